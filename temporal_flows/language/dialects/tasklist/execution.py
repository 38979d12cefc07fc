"""How a task runs, beside what it does: `retry` (a flow's too), the `onSuccess`/`onError` handlers,
`taskRunner` and `workerGroup`. Each is checked key by key and normalized; problems stand at its value."""

from __future__ import annotations

from typing import Any

from temporal_flows.language.dialects.tasklist.report import Report
from temporal_flows.language.dialects.tasklist.values import INVALID, is_duration
from temporal_flows.language.source import YMap
from temporal_flows.model.durations import EXPECTED as DURATION_EXPECTED
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import Location
from temporal_flows.model.keys import snake_case
from temporal_flows.model.problems import did_you_mean
from temporal_flows.model.retries import BEHAVIORS, RETRY_PROPERTIES, RETRY_TYPES
from temporal_flows.tasks.runnable.task_runners import DOCKER_RUNNERS, PROCESS_RUNNERS, docker_option_problems, normalized_runner


def retry(report: Report, value: Any, location: Location) -> Any:
    """A `retry` mapping checked key by key and normalized (snake_case keys, seconds); INVALID when not."""
    if not isinstance(value, dict):
        report.problem(location, "`retry` must be a mapping with `type` and `maxAttempt` and/or `maxDuration`")
        return INVALID
    normalized: dict[str, Any] = {}
    ok = True
    for key, item in value.items():
        name = snake_case(key)
        kind = RETRY_PROPERTIES.get(name)
        where = value.key_location(key) if isinstance(value, YMap) else location
        if kind is None:
            report.problem(where, f"unknown retry property `{key}`{did_you_mean(name, list(RETRY_PROPERTIES))}")
            ok = False
            continue
        checked = _check_retry_value(kind, item)
        if checked is INVALID:
            report.problem(where, f"retry `{key}` must be {_RETRY_EXPECTED[kind]}, got {item!r}")
            ok = False
        elif name != "behavior":
            normalized[name] = checked
    if ok and "max_attempt" not in normalized and "max_duration" not in normalized:
        report.problem(location, "`retry` needs `maxAttempt` or `maxDuration`, or it never stops")
        ok = False
    return normalized if ok else INVALID


def handler(report: Report, name: str, value: Any, location: Location) -> Any:
    """`on_success`/`on_error`: `{next: <task id>, with: {name: template}}`; INVALID when not."""
    if not isinstance(value, dict):
        report.problem(location, f"`{name}` must be a mapping with `next` and/or `with`")
        return INVALID
    unknown = sorted(set(value) - {"next", "with"})
    if unknown:
        report.problem(location, f"unknown `{name}` properties {unknown} (expected `next`, `with`)")
    target, values = value.get("next"), value.get("with")
    if target is not None and not isinstance(target, str):
        report.problem(location, f"`{name}.next` must be a task id, got {target!r}")
        return INVALID
    if values is not None and not isinstance(values, dict):
        report.problem(location, f"`{name}.with` must be a mapping of name → value")
        return INVALID
    return {"next": target, "with": dict(values or {})}


def worker_group(report: Report, value: dict[str, Any], location: Location) -> str | None:
    """`workerGroup.key`: the Temporal task queue the task's activities go to."""
    key = value.get("key")
    if not isinstance(key, str) or not key:
        report.problem(location, "`workerGroup` must be a mapping with a `key` (the Temporal task queue)")
        return None
    return key


def task_runner(report: Report, value: Any, location: Location) -> Any:
    """`taskRunner`: Process or Docker (SPEC §4), normalized; INVALID when not."""
    runner = value.get("type") if isinstance(value, dict) else None
    if runner in PROCESS_RUNNERS:
        extra = sorted(set(value) - {"type"})
        if extra:
            report.problem(location, f"unknown task runner properties {extra}")
            return INVALID
    elif runner in DOCKER_RUNNERS:
        problems = docker_option_problems(value)
        for problem in problems:
            report.problem(location, problem)
        if problems:
            return INVALID
    else:
        report.problem(location, f"unknown task runner {runner!r} (expected `{PROCESS_RUNNERS[0]}` or `{DOCKER_RUNNERS[0]}`)")
        return INVALID
    return normalized_runner(value)


def _check_retry_value(kind: str, value: Any) -> Any:
    """One retry property's value by its kind (`RETRY_PROPERTIES`), normalized; INVALID when it does not fit."""
    if kind == "duration":
        return parse_duration(value) if is_duration(value, None) else INVALID
    if kind == "attempts":
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else INVALID
    if kind == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else INVALID
    if kind == "boolean":
        return value if isinstance(value, bool) else INVALID
    if kind == "choice":
        return value if value in RETRY_TYPES else INVALID
    return value if value in BEHAVIORS else INVALID


_RETRY_EXPECTED = {
    "duration": DURATION_EXPECTED,
    "attempts": "a whole number ≥ 1",
    "number": "a number > 0",
    "boolean": "true or false",
    "choice": " or ".join(f"`{name}`" for name in RETRY_TYPES),
    "behavior": " or ".join(f"`{name}`" for name in BEHAVIORS) + " (a new execution per retry is not supported)",
}
