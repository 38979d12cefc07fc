"""Flow triggers (SPEC §5): every command accepts them; `tflow deploy` turns Schedule triggers into
Temporal Schedules; `tflow run` ignores them.

Declarations are checked while the flow is read (`check_triggers`, called by the dialect), so a bad
cron or time zone is a problem with its line before anything starts. A Schedule's Kestra properties
map onto the Temporal Schedule where Temporal has the same notion (`ScheduleTrigger`); those it has
not are problems, never silently dropped. Other trigger types need only `id` and `type`.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Callable

from temporal_flows.language.cron import CronError, temporal_cron
from temporal_flows.language.source import YMap
from temporal_flows.model.durations import EXPECTED as DURATION_EXPECTED
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import Location
from temporal_flows.model.keys import snake_case
from temporal_flows.model.problems import Problem, did_you_mean

SCHEDULE_TRIGGER = "io.kestra.plugin.core.trigger.Schedule"
"""The trigger type that maps to a Temporal Schedule."""
SCHEDULE_ALIASES = (SCHEDULE_TRIGGER, "io.kestra.core.models.triggers.types.Schedule", "Schedule")
"""Names Kestra flows use for it (the second is Kestra's name before 0.17)."""

MIN_CATCHUP_WINDOW_S = 10.0
"""Temporal's smallest catch-up window: a shorter `lateMaximumDelay` is raised to it."""
RECOVER_MISSED = ("ALL", "NONE")
"""`recoverMissedSchedules` values that map: ALL → Temporal's default catch-up window (one year),
NONE → the smallest one. (LAST has no Temporal equivalent.)"""
STOP_AFTER = ("FAILED",)
"""`stopAfter` states that map: a failed run pauses the schedule (Temporal's pause-on-failure)."""

_Check = Callable[[Any], "str | None"]
"""A property check: None when the value is fine, else what was expected."""


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "a mapping of name → value"


def _cron(value: Any) -> str | None:
    return None if isinstance(value, str) else "a cron expression like `0 * * * *` or `@hourly`"


def _timezone(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "an IANA time zone name like `Europe/Paris` or `UTC`"
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone name like `Europe/Paris` or `UTC`"
    return None


def _duration(value: Any) -> str | None:
    try:
        parse_duration(value)
    except (ValueError, TypeError, AttributeError):
        return DURATION_EXPECTED
    return None


def _recover(value: Any) -> str | None:
    if value in RECOVER_MISSED:
        return None
    if value == "LAST":
        return "`ALL` or `NONE` (`LAST` has no Temporal equivalent: Temporal catches up every missed time in its window)"
    return "`ALL` or `NONE`"


def _stop_after(value: Any) -> str | None:
    if isinstance(value, list) and value and all(state in STOP_AFTER for state in value):
        return None
    return "`[FAILED]` (Temporal pauses a schedule after a failed run; other states have no equivalent)"


def _labels(value: Any) -> str | None:
    if isinstance(value, dict):
        return None
    if isinstance(value, list) and all(isinstance(item, dict) and set(item) == {"key", "value"} for item in value):
        return None
    return "a mapping of name → value, or a list of `{key, value}`"


SCHEDULE_PROPERTIES: dict[str, _Check] = {
    "id": _string,
    "type": _string,
    "description": _string,
    "cron": _cron,
    "with_seconds": _boolean,
    "timezone": _timezone,
    "inputs": _mapping,
    "disabled": _boolean,
    "labels": _labels,
    "late_maximum_delay": _duration,
    "recover_missed_schedules": _recover,
    "stop_after": _stop_after,
}
"""A Schedule's properties (snake_case) that map onto a Temporal Schedule, with their checks."""

SCHEDULE_PROPERTIES_NOT_SUPPORTED: dict[str, str] = {
    "backfill": "deploy the schedule, then backfill it with `temporal schedule backfill --schedule-id <id>`",
    "conditions": "Temporal schedules have no conditions; put a `runIf` on the flow's tasks instead",
    "schedule_conditions": "Temporal schedules have no conditions; put a `runIf` on the flow's tasks instead",
    "interval": "it is deprecated in Kestra; use `cron`",
    "worker_group": "set the flow's task queue with `tflow deploy --task-queue`",
}
"""Kestra Schedule properties with no Temporal equivalent, and what to do instead."""


def is_schedule(trigger: dict[str, Any]) -> bool:
    return trigger.get("type") in SCHEDULE_ALIASES


def check_triggers(nodes: list[Any]) -> list[Problem]:
    """Problems of a flow's `triggers` entries (the mappings; a missing or bad `id` is reported by
    the dialect): a `type`, unique ids, and for a Schedule every property."""
    problems: list[Problem] = []
    seen: dict[str, Location] = {}
    for node in nodes:
        if not isinstance(node, YMap):
            continue
        trigger_id = node.get("id")
        if isinstance(trigger_id, str):
            if trigger_id in seen:
                message = f"duplicate trigger id `{trigger_id}` (first defined at line {seen[trigger_id].line})"
                problems.append(_problem(node.value_location("id"), message))
            else:
                seen[trigger_id] = node.location
        kind = node.get("type")
        if "type" not in node:
            problems.append(_problem(node.location, f"trigger `{trigger_id}` is missing `type` (e.g. `{SCHEDULE_TRIGGER}`)"))
        elif not isinstance(kind, str) or not kind:
            problems.append(_problem(node.value_location("type"), f"trigger `{trigger_id}`: `type` must be a trigger type name"))
        elif kind in SCHEDULE_ALIASES:
            problems.extend(_check_schedule(node, trigger_id))
    return problems


def _check_schedule(node: YMap, trigger_id: Any) -> list[Problem]:
    problems = []
    given = {snake_case(key): key for key in node}
    for name, key in given.items():
        where = node.key_location(key)
        check = SCHEDULE_PROPERTIES.get(name)
        if name in SCHEDULE_PROPERTIES_NOT_SUPPORTED:
            why = SCHEDULE_PROPERTIES_NOT_SUPPORTED[name]
            problems.append(_problem(where, f"Schedule trigger `{trigger_id}`: `{key}` is not supported ({why})"))
        elif check is None:
            hint = did_you_mean(name, list(SCHEDULE_PROPERTIES))
            problems.append(_problem(where, f"Schedule trigger `{trigger_id}`: unknown property `{key}`{hint}"))
        elif (expected := check(node[key])) is not None:
            shown = repr(node[key]) if not isinstance(node[key], (dict, list)) else type(node[key]).__name__
            problems.append(_problem(node.value_location(key), f"Schedule trigger `{trigger_id}`: `{key}` must be {expected}, got {shown}"))
    if "cron" not in given:
        problems.append(_problem(node.location, f"Schedule trigger `{trigger_id}` is missing `cron`"))
    elif isinstance(node[given["cron"]], str):
        with_seconds = node.get(given.get("with_seconds", "")) is True
        try:
            temporal_cron(node[given["cron"]], with_seconds)
        except CronError as error:
            problems.append(_problem(node.value_location(given["cron"]), f"Schedule trigger `{trigger_id}`: `cron`: {error}"))
    return problems


@dataclass(frozen=True)
class ScheduleTrigger:
    """A checked Schedule declaration, said as a Temporal Schedule says it."""

    id: str
    cron: str
    """As written in the flow (shown by `tflow schedules`)."""
    temporal_cron: str
    """The same times as Temporal's cron string."""
    timezone: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    catchup_window_s: float | None = None
    """None: Temporal's default (one year), as Kestra's ALL recovers every missed time."""
    pause_on_failure: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    description: str | None = None


def schedule_of(trigger: dict[str, Any]) -> ScheduleTrigger:
    """The Schedule a checked declaration (snake_case keys, as the flow keeps it) stands for."""
    catchup: float | None = None
    if trigger.get("recover_missed_schedules") == "NONE":
        catchup = MIN_CATCHUP_WINDOW_S
    if trigger.get("late_maximum_delay") is not None:
        delay = max(parse_duration(trigger["late_maximum_delay"]), MIN_CATCHUP_WINDOW_S)
        catchup = delay if catchup is None else min(catchup, delay)
    return ScheduleTrigger(
        id=trigger["id"],
        cron=trigger["cron"],
        temporal_cron=temporal_cron(trigger["cron"], trigger.get("with_seconds") is True),
        timezone=trigger.get("timezone"),
        inputs=dict(trigger.get("inputs") or {}),
        paused=trigger.get("disabled") is True,
        catchup_window_s=catchup,
        pause_on_failure="FAILED" in (trigger.get("stop_after") or []),
        labels=_label_map(trigger.get("labels")),
        description=trigger.get("description"),
    )


def _label_map(labels: Any) -> dict[str, str]:
    if isinstance(labels, list):
        return {str(item["key"]): str(item["value"]) for item in labels}
    return {str(key): str(value) for key, value in (labels or {}).items()}


def schedule_id(namespace: str, flow_id: str, trigger_id: str) -> str:
    """The Temporal Schedule id of a flow's trigger (SPEC §5)."""
    return f"{schedule_prefix(namespace, flow_id)}{trigger_id}"


def schedule_prefix(namespace: str, flow_id: str) -> str:
    """Every schedule of a flow starts with this, so undeploy finds renamed or removed triggers too."""
    return f"{namespace}.{flow_id}."


def _problem(location: Location, message: str) -> Problem:
    return Problem(location.file, location.line, location.column, message)
