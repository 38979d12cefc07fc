"""Task-list flows (Kestra and the `parallel` spec): YAML mapping → `Flow`, checking every property.

Keys may be camelCase or snake_case; they are normalized to snake_case. Each problem names the
file, line and column of the offending key or value and what was expected.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from temporal_flows.durations import EXPECTED as DURATION_EXPECTED
from temporal_flows.durations import parse_duration
from temporal_flows.loader import LoadedFlow, SourceMap, YList, YMap
from temporal_flows.model import Flow, Location, Task
from temporal_flows.problems import Problem
from temporal_flows.tasktypes import (
    COMMON_PROPERTIES,
    NOT_YET_SUPPORTED_PROPERTIES,
    PROCESS_RUNNER,
    PropertySpec,
    TaskType,
    known_type_names,
    resolve_type,
)

FLOW_KEYS = ("id", "namespace", "description", "labels", "variables", "tasks")
FLOW_KEYS_NOT_YET_SUPPORTED = ("inputs", "outputs", "errors", "finally", "retry", "triggers", "concurrency")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(key: str) -> str:
    """`allowFailure` → `allow_failure`; snake_case keys are unchanged."""
    return _CAMEL_BOUNDARY.sub("_", key).lower()


def did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


class _Normalizer:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self.source_map = SourceMap()

    def problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(self.file, location.line, location.column, message))

    # -- the flow --------------------------------------------------------------------------

    def flow(self, root: YMap) -> Flow | None:
        for key in root:
            if key in FLOW_KEYS:
                continue
            if snake_case(key) in FLOW_KEYS_NOT_YET_SUPPORTED or key in FLOW_KEYS_NOT_YET_SUPPORTED:
                self.problem(root.key_location(key), f"flow property `{key}` is not supported yet")
            else:
                hint = did_you_mean(key, list(FLOW_KEYS))
                self.problem(root.key_location(key), f"unknown flow property `{key}`{hint}")
        flow_id = self._identifier(root, "id", "flow")
        namespace = self._identifier(root, "namespace", "flow")
        tasks = self._task_list(root, "tasks", owner="the flow")
        description = root.get("description")
        if description is not None and not isinstance(description, str):
            self.problem(root.value_location("description"), "`description` must be a string")
        labels = self._mapping(root, "labels") or {}
        variables = self._mapping(root, "variables") or {}
        if flow_id is None or namespace is None or tasks is None:
            return None
        return Flow(
            id=flow_id,
            namespace=namespace,
            tasks=tasks,
            description=description if isinstance(description, str) else None,
            labels=dict(labels),
            variables=dict(variables),
            source_file=self.file,
        )

    def _identifier(self, node: YMap, key: str, what: str) -> str | None:
        if key not in node:
            self.problem(node.location, f"{what} is missing `{key}`")
            return None
        value = node[key]
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            self.problem(
                node.value_location(key),
                f"`{key}` must be a name of letters, digits, `_`, `-` or `.`, got {value!r}",
            )
            return None
        return value

    def _mapping(self, node: YMap, key: str) -> dict[str, Any] | None:
        value = node.get(key)
        if value is not None and not isinstance(value, dict):
            self.problem(node.value_location(key), f"`{key}` must be a mapping")
            return None
        return value

    # -- tasks -----------------------------------------------------------------------------

    def _task_list(self, node: YMap, key: str, owner: str) -> list[Task] | None:
        if key not in node:
            self.problem(node.location, f"{owner} is missing `{key}` (a list of tasks)")
            return None
        items = node[key]
        if not isinstance(items, YList) or not items:
            self.problem(node.value_location(key), f"`{key}` of {owner} must be a non-empty list of tasks")
            return None
        # Tasks that did not normalize are left out (their problems are recorded), so the rest of
        # the flow is still validated and every problem is reported at once.
        tasks = []
        for item, location in zip(items, items.item_locations):
            task = self.task(item, location)
            if task is not None:
                tasks.append(task)
        return tasks

    def task(self, node: Any, location: Location) -> Task | None:
        if not isinstance(node, YMap):
            self.problem(location, "a task must be a mapping with `id` and `type`")
            return None
        task_id = self._identifier(node, "id", "task")
        if task_id is not None:
            self.source_map.declared.append((task_id, node.location))
        task_type = self._task_type(node)
        if task_id is None or task_type is None:
            return None
        task = Task(id=task_id, type=task_type.name, location=node.location)
        given = set()
        for key, value in node.items():
            given.add(self._property(task, task_type, node, key, value))
        for name, spec in task_type.properties.items():
            if spec.required and name not in given:
                self.problem(node.location, f"task `{task_id}` ({task_type.name}) is missing `{name}`")
        self._defaults(task, node, task_type)
        return task

    def _task_type(self, node: YMap) -> TaskType | None:
        if "type" not in node:
            self.problem(node.location, "task is missing `type`")
            return None
        name = node["type"]
        location = node.value_location("type")
        task_type = resolve_type(name) if isinstance(name, str) else None
        if task_type is None:
            hint = did_you_mean(str(name), known_type_names())
            self.problem(location, f"unknown task type `{name}`{hint}")
            return None
        if not task_type.implemented:
            self.problem(location, f"task type `{name}` ({task_type.name}) is not supported yet")
            return None
        return task_type

    def _property(self, task: Task, task_type: TaskType, node: YMap, key: str, value: Any) -> str | None:
        """Check and assign one property; returns its canonical name when it is a known one."""
        name = snake_case(key)
        spec, canonical = _lookup(task_type, name)
        location = node.key_location(key)
        self.source_map.properties[(node.location, canonical or name)] = node.value_location(key)
        if spec is None:
            if name in NOT_YET_SUPPORTED_PROPERTIES:
                self.problem(location, f"task property `{key}` is not supported yet")
            else:
                candidates = [*COMMON_PROPERTIES, *task_type.properties]
                self.problem(location, f"unknown property `{key}` for a `{task_type.name}` task{did_you_mean(name, candidates)}")
            return None
        if name in ("id", "type"):
            return canonical
        checked = self._check(spec, key, value, node.value_location(key))
        if checked is not _INVALID:
            self._assign(task, canonical, checked, node, key)
        return canonical

    def _assign(self, task: Task, name: str, value: Any, node: YMap, key: str) -> None:
        if name == "tasks":
            children = self._task_list(node, key, owner=f"task `{task.id}`")
            task.tasks = children or []
        elif name == "timeout":
            task.timeout_s = value
        elif name == "worker_group":
            task.worker_group = self._worker_group(value, node.value_location(key))
        elif name == "task_runner":
            self._task_runner(value, node.value_location(key))
        elif name in ("description", "disabled", "run_if", "allow_failure", "allow_warning"):
            setattr(task, name, value)
        elif name != "log_level":
            task.properties[name] = value

    def _defaults(self, task: Task, node: YMap, task_type: TaskType) -> None:
        if task.type != "parallel" or "strategy" in task.properties:
            return
        # Kestra's Parallel stops on the first failure (onChildFailure: FAIL); the `parallel` spec waits for all.
        kestra = node["type"] != "parallel" and task.properties.get("on_child_failure", "FAIL") == "FAIL"
        task.properties["strategy"] = "fail_fast" if kestra else "wait_all"

    def _worker_group(self, value: dict[str, Any], location: Location) -> str | None:
        key = value.get("key")
        if not isinstance(key, str) or not key:
            self.problem(location, "`workerGroup` must be a mapping with a `key` (the Temporal task queue)")
            return None
        return key

    def _task_runner(self, value: dict[str, Any], location: Location) -> None:
        runner = value.get("type")
        if runner not in (PROCESS_RUNNER, "Process", "process"):
            self.problem(location, f"task runner `{runner}` is not supported yet (expected `{PROCESS_RUNNER}`)")
        extra = sorted(set(value) - {"type"})
        if extra:
            self.problem(location, f"unknown task runner properties {extra}")

    def _check(self, spec: PropertySpec, key: str, value: Any, location: Location) -> Any:
        if spec.kind == "choice":
            expected = "one of " + ", ".join(f"`{choice}`" for choice in spec.choices)
        else:
            expected = _EXPECTED[spec.kind]
        ok = _CHECKS[spec.kind](value, spec)
        if not ok:
            shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
            self.problem(location, f"`{key}` must be {expected}, got {shown}")
            return _INVALID
        if spec.kind == "duration":
            return parse_duration(value)
        if spec.kind == "mapping" and key == "env":
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value


def _lookup(task_type: TaskType, name: str) -> tuple[PropertySpec | None, str | None]:
    for table in (COMMON_PROPERTIES, task_type.properties):
        for canonical, spec in table.items():
            if name == canonical or name in spec.aliases:
                return spec, canonical
    return None, None


def _is_duration(value: Any, _: PropertySpec) -> bool:
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


_INVALID = object()
_CHECKS = {
    "string": lambda value, _: isinstance(value, str),
    "integer": lambda value, _: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
    "boolean": lambda value, _: isinstance(value, bool),
    "string_list": lambda value, _: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "mapping": lambda value, _: isinstance(value, dict),
    "duration": _is_duration,
    "tasks": lambda value, _: isinstance(value, list),
    "choice": lambda value, spec: value in spec.choices,
    "any": lambda value, _: True,
}
_EXPECTED = {
    "string": "a string",
    "integer": "a whole number ≥ 0",
    "boolean": "true or false",
    "string_list": "a list of strings",
    "mapping": "a mapping",
    "duration": DURATION_EXPECTED,
    "tasks": "a list of tasks",
    "any": "a value",
}


def normalize_flow(root: YMap, file: str) -> tuple[LoadedFlow | None, list[Problem]]:
    """Normalize a task-list flow; returns the flow (None if unusable) and the problems found."""
    normalizer = _Normalizer(file)
    flow = normalizer.flow(root)
    loaded = LoadedFlow(flow, normalizer.source_map) if flow is not None else None
    return loaded, normalizer.problems
