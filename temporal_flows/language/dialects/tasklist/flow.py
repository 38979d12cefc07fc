"""Task-list flows (Kestra and the `parallel` spec): YAML mapping → `Flow`, checking every property.

Keys may be camelCase or snake_case; they are normalized to snake_case. Each problem names the
file, line and column of the offending key or value and what was expected.
"""

from __future__ import annotations

import re
from typing import Any

from temporal_flows.expressions.templates import as_text, is_template
from temporal_flows.language.flow_outputs import normalize_outputs
from temporal_flows.language.inputs import normalize_inputs
from temporal_flows.language.source import LoadedFlow, SourceMap, YList, YMap
from temporal_flows.language.triggers import check_triggers
from temporal_flows.model.durations import EXPECTED as DURATION_EXPECTED
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import Flow, Location, Task
from temporal_flows.model.keys import snake_case
from temporal_flows.model.problems import Problem, did_you_mean
from temporal_flows.model.retries import BEHAVIORS, RETRY_PROPERTIES, RETRY_TYPES
from temporal_flows.tasks import COMMON_PROPERTIES, PropertySpec, TaskType, known_type_names, resolve_type
from temporal_flows.tasks.flowable.switch import CASE_PREFIX
from temporal_flows.tasks.runnable.task_runners import DOCKER_RUNNERS, PROCESS_RUNNERS, docker_option_problems, normalized_runner

FLOW_KEYS = (
    "id", "namespace", "description", "labels", "variables", "inputs", "outputs", "triggers", "tasks", "errors",
    "finally", "retry",
)
FLOW_KEYS_NOT_YET_SUPPORTED = ("concurrency",)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
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
        labels = self._labels(root)
        variables = self._mapping(root, "variables") or {}
        errors = self._task_list(root, "errors", owner="the flow") if "errors" in root else []
        final = self._task_list(root, "finally", owner="the flow") if "finally" in root else []
        retry = self._retry(root["retry"], root.value_location("retry")) if "retry" in root else None
        inputs = self._declarations(root, "inputs")
        outputs = self._declarations(root, "outputs")
        triggers = self._declarations(root, "triggers")
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
            errors=errors or [],
            finally_tasks=final or [],
            retry=retry if retry is not _INVALID else None,
            inputs=inputs,
            outputs=outputs,
            triggers=triggers,
        )

    def _declarations(self, root: YMap, key: str, kind: str | None = None) -> list[dict[str, Any]]:
        """A flow's `inputs`/`outputs`/`triggers`: a list of mappings, each with an `id`; `kind`
        says which when `key` is another name for it (a pause's `onResume` declares `inputs`)."""
        kind = kind or key
        if key not in root:
            return []
        items = root[key]
        if not isinstance(items, YList):
            self.problem(root.value_location(key), f"`{key}` must be a list of mappings, each with an `id`")
            return []
        found = []
        placed: list[YMap] = []
        for item, location in zip(items, items.item_locations):
            if not isinstance(item, YMap):
                self.problem(location, f"an entry of `{key}` must be a mapping with an `id`")
                continue
            id_key = "name" if kind == "inputs" and "id" not in item and "name" in item else "id"  # Kestra's older `name`
            if self._identifier(item, id_key, f"an entry of `{key}`") is not None:
                entry = {snake_case(name): value for name, value in item.items() if name != id_key}
                found.append({"id": item[id_key], **entry})
                placed.append(item)
                self.source_map.declarations.setdefault((key, item[id_key]), item.location)
        if kind in _DECLARATION_CHECKS:
            found = self._checked_entries(kind, found, placed)
        if key == "triggers":
            self.problems.extend(check_triggers(list(items)))
        return found

    def _checked_entries(self, key: str, entries: list[dict[str, Any]], placed: list[YMap]) -> list[dict[str, Any]]:
        """Flow `inputs`/`outputs` checked by their own module; each problem placed at its key or value."""
        known_task_ids = [task_id for task_id, _ in self.source_map.declared]
        normalized, problems = _DECLARATION_CHECKS[key](entries, known_task_ids)
        for found in problems:
            item = placed[found.index]
            written = next((name for name in item if snake_case(name) == found.key), None)
            if written is None:
                location = item.location
            else:
                location = item.key_location(written) if found.at_key else item.value_location(written)
            self.problem(location, found.message)
        return normalized

    def _labels(self, root: YMap) -> dict[str, str]:
        """`labels` as a mapping, or Kestra's list form `[{key, value}]`; values as text."""
        value = root.get("labels")
        if value is None:
            return {}
        expected = "`labels` must be a mapping of name → text, or a list of `{key, value}`"
        if isinstance(value, YList):
            pairs = []
            for item, location in zip(value, value.item_locations):
                if not isinstance(item, dict) or set(item) != {"key", "value"} or not isinstance(item["key"], str):
                    self.problem(location, f"{expected}; this entry is not a `{{key, value}}`")
                else:
                    pairs.append((item["key"], item["value"]))
        elif isinstance(value, dict):
            pairs = list(value.items())
        else:
            self.problem(root.value_location("labels"), expected)
            return {}
        labels = {}
        for name, text in pairs:
            if isinstance(text, (dict, list)) or text is None:
                self.problem(root.value_location("labels"), f"label `{name}` must be text, got {type(text).__name__ if text is not None else 'null'}")
            else:
                labels[str(name)] = str(as_text(text))
        return labels

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
        self._check_handler_targets(tasks)
        return tasks

    def _check_handler_targets(self, tasks: list[Task]) -> None:
        """A handler's `next` moves control forward within the same list (SPEC §3.4)."""
        position = {task.id: index for index, task in enumerate(tasks)}
        for index, task in enumerate(tasks):
            for handler in ("on_success", "on_error"):
                target = (task.properties.get(handler) or {}).get("next")
                if target is None:
                    continue
                location = self.source_map.locate(task.location, handler) if task.location else Location(self.file, 1, 1)
                if target not in position:
                    hint = did_you_mean(str(target), list(position))
                    self.problem(location, f"`{handler}.next` of `{task.id}`: `{target}` is not a task of the same list{hint}")
                elif position[target] <= index:
                    self.problem(location, f"`{handler}.next` of `{task.id}`: `{target}` comes before it; `next` only moves forward")

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
        chosen = [name for name in task_type.one_of if name in given]
        if task_type.one_of and len(chosen) != 1:
            names = " or ".join(f"`{name}`" for name in task_type.one_of)
            self.problem(node.location, f"task `{task_id}` ({task_type.name}) needs exactly one of {names}"
                         + (f", not {len(chosen)}" if chosen else ""))
        if task_type.default_properties is not None:
            task_type.default_properties(task, node["type"])
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
        if task_type.delegate is not None:
            chosen = task_type.delegate({snake_case(key): value for key, value in node.items()})
            if chosen is None:
                self.problem(location, f"a `{name}` task is {task_type.description}, and has none of them")
                return None
            return resolve_type(chosen)
        return task_type

    def _property(self, task: Task, task_type: TaskType, node: YMap, key: str, value: Any) -> str | None:
        """Check and assign one property; returns its canonical name when it is a known one."""
        name = snake_case(key)
        spec, canonical = _lookup(task_type, name)
        location = node.key_location(key)
        self.source_map.properties[(node.location, canonical or name)] = node.value_location(key)
        if spec is None:
            candidates = [*COMMON_PROPERTIES, *task_type.properties]
            self.problem(location, f"unknown property `{key}` for a `{task_type.name}` task{did_you_mean(name, candidates)}")
            return None
        if name in ("id", "type"):
            return canonical
        owner = f"task `{task.id}`"
        value_location = node.value_location(key)
        if spec.kind == "tasks" and value is None and not spec.required:
            return canonical  # Kestra reads an optional list written as `null` (a switch's `defaults: null`) as absent
        if spec.kind == "tasks":
            children = self._task_list(node, key, owner=owner) or []
            if canonical == "tasks":
                task.tasks = children
            else:
                task.branches[canonical] = children
        elif spec.kind == "task_cases":
            self._cases(task, value, value_location)
        elif spec.kind == "dag_tasks":
            self._dag(task, value, value_location)
        elif spec.kind == "retry":
            retry = self._retry(value, value_location)
            if retry is not _INVALID:
                task.retry = retry
        elif spec.kind == "handler":
            self._handler(task, canonical, value, value_location)
        elif spec.kind == "task_runner":
            self._task_runner(task, value, value_location)
        elif spec.kind == "inputs":  # a pause's `onResume`: declared as a flow's `inputs` are
            task.properties[canonical] = self._declarations(node, key, kind="inputs")
        else:
            checked = self._check(spec, key, value, value_location)
            if checked is not _INVALID:
                self._assign(task, canonical, checked, value_location)
        return canonical

    def _assign(self, task: Task, name: str, value: Any, location: Location) -> None:
        if name == "timeout":
            task.timeout_s = value
        elif name == "worker_group":
            task.worker_group = self._worker_group(value, location)
        elif name in ("description", "disabled", "run_if", "allow_failure", "allow_warning"):
            setattr(task, name, value)
        elif name != "log_level":
            task.properties[name] = value

    # -- structured properties ---------------------------------------------------------------

    def _cases(self, task: Task, value: Any, location: Location) -> None:
        """A switch's `cases`: case value → list of tasks, kept as branches `case <value>`."""
        if not isinstance(value, YMap) or not value:
            self.problem(location, "`cases` must be a mapping of case value → list of tasks")
            return
        for case in value:
            children = self._task_list(value, case, owner=f"case `{case}` of task `{task.id}`")
            task.branches[CASE_PREFIX + str(case)] = children or []

    def _dag(self, task: Task, value: Any, location: Location) -> None:
        """`tasks: [{task: {...}, dependsOn: [ids]}]` → children plus the `depends_on` relation;
        unknown ids and cycles are problems here, where their lines are known."""
        if not isinstance(value, YList) or not value:
            self.problem(location, "`tasks` of a dag must be a non-empty list of `{task, dependsOn}`")
            return
        depends_on: dict[str, list[str]] = {}
        places: dict[str, Location] = {}
        for item, item_location in zip(value, value.item_locations):
            if not isinstance(item, YMap) or "task" not in item:
                self.problem(item_location, "a dag entry must be a mapping with `task` (and optional `dependsOn`)")
                continue
            for key in item:
                if snake_case(key) not in ("task", "depends_on"):
                    self.problem(item.key_location(key), f"unknown dag entry property `{key}` (expected `task`, `dependsOn`)")
            child = self.task(item["task"], item.value_location("task"))
            if child is None:
                continue
            task.tasks.append(child)
            needed = next((item[key] for key in item if snake_case(key) == "depends_on"), None) or []
            if not isinstance(needed, list) or not all(isinstance(entry, str) for entry in needed):
                self.problem(item_location, f"`dependsOn` of `{child.id}` must be a list of task ids")
                continue
            depends_on[child.id] = list(needed)
            places[child.id] = item_location
        known = [child.id for child in task.tasks]
        for child_id, needed in depends_on.items():
            for dependency in needed:
                if dependency not in known:
                    hint = did_you_mean(dependency, known)
                    self.problem(places[child_id], f"`{child_id}` depends on `{dependency}`, which is not a task of dag `{task.id}`{hint}")
        for cycle in _cycles(depends_on):
            members = " → ".join(f"`{member}`" for member in [*cycle, cycle[0]])
            self.problem(places[cycle[0]], f"dag `{task.id}` has a dependency cycle: {members}")
        task.properties["depends_on"] = {child_id: needed for child_id, needed in depends_on.items() if needed}

    def _handler(self, task: Task, name: str, value: Any, location: Location) -> None:
        """`on_success`/`on_error`: `{next: <task id>, with: {name: template}}`."""
        if not isinstance(value, dict):
            self.problem(location, f"`{name}` must be a mapping with `next` and/or `with`")
            return
        unknown = sorted(set(value) - {"next", "with"})
        if unknown:
            self.problem(location, f"unknown `{name}` properties {unknown} (expected `next`, `with`)")
        target, values = value.get("next"), value.get("with")
        if target is not None and not isinstance(target, str):
            self.problem(location, f"`{name}.next` must be a task id, got {target!r}")
            return
        if values is not None and not isinstance(values, dict):
            self.problem(location, f"`{name}.with` must be a mapping of name → value")
            return
        task.properties[name] = {"next": target, "with": dict(values or {})}

    def _retry(self, value: Any, location: Location) -> Any:
        """A `retry` mapping checked key by key and normalized (snake_case keys, seconds)."""
        if not isinstance(value, dict):
            self.problem(location, "`retry` must be a mapping with `type` and `maxAttempt` and/or `maxDuration`")
            return _INVALID
        retry: dict[str, Any] = {}
        ok = True
        for key, item in value.items():
            name = snake_case(key)
            kind = RETRY_PROPERTIES.get(name)
            where = value.key_location(key) if isinstance(value, YMap) else location
            if kind is None:
                self.problem(where, f"unknown retry property `{key}`{did_you_mean(name, list(RETRY_PROPERTIES))}")
                ok = False
                continue
            checked = _check_retry_value(kind, item)
            if checked is _INVALID:
                self.problem(where, f"retry `{key}` must be {_RETRY_EXPECTED[kind]}, got {item!r}")
                ok = False
            elif name != "behavior":
                retry[name] = checked
        if ok and "max_attempt" not in retry and "max_duration" not in retry:
            self.problem(location, "`retry` needs `maxAttempt` or `maxDuration`, or it never stops")
            ok = False
        return retry if ok else _INVALID

    def _worker_group(self, value: dict[str, Any], location: Location) -> str | None:
        key = value.get("key")
        if not isinstance(key, str) or not key:
            self.problem(location, "`workerGroup` must be a mapping with a `key` (the Temporal task queue)")
            return None
        return key

    def _task_runner(self, task: Task, value: Any, location: Location) -> None:
        """`taskRunner`: Process or Docker (SPEC §4), kept as the task's `task_runner` property."""
        runner = value.get("type") if isinstance(value, dict) else None
        if runner in PROCESS_RUNNERS:
            extra = sorted(set(value) - {"type"})
            if extra:
                self.problem(location, f"unknown task runner properties {extra}")
                return
        elif runner in DOCKER_RUNNERS:
            problems = docker_option_problems(value)
            for problem in problems:
                self.problem(location, problem)
            if problems:
                return
        else:
            self.problem(location, f"unknown task runner {runner!r} (expected `{PROCESS_RUNNERS[0]}` or `{DOCKER_RUNNERS[0]}`)")
            return
        task.properties["task_runner"] = normalized_runner(value)

    def _check(self, spec: PropertySpec, key: str, value: Any, location: Location) -> Any:
        if spec.kind == "choice":
            expected = "one of " + ", ".join(f"`{choice}`" for choice in spec.choices)
        elif spec.kind == "integer":
            expected = f"a whole number ≥ {spec.minimum}"
        else:
            expected = _EXPECTED[spec.kind]
        ok = _CHECKS[spec.kind](value, spec)
        if not ok:
            shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
            self.problem(location, f"`{key}` must be {expected}, got {shown}")
            return _INVALID
        if spec.dynamic and isinstance(value, str) and is_template(value):
            return value
        problem = spec.check(value) if spec.check is not None else None
        if problem:
            self.problem(location, f"`{key}`: {problem}")
            return _INVALID
        if spec.kind == "duration":
            return parse_duration(value)
        if spec.kind == "mapping" and key == "env":
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value


def _cycles(depends_on: dict[str, list[str]]) -> list[list[str]]:
    """Each dependency cycle once, as its members in order (depth-first search)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dependency in depends_on.get(node, []):
            if state.get(dependency) == 1:
                cycles.append(path[path.index(dependency):])
            elif dependency in depends_on and dependency not in state:
                visit(dependency)
        path.pop()
        state[node] = 2

    for node in depends_on:
        if node not in state:
            visit(node)
    return cycles


def _check_retry_value(kind: str, value: Any) -> Any:
    if kind == "duration":
        return parse_duration(value) if _is_duration(value, None) else _INVALID
    if kind == "attempts":
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else _INVALID
    if kind == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else _INVALID
    if kind == "boolean":
        return value if isinstance(value, bool) else _INVALID
    if kind == "choice":
        return value if value in RETRY_TYPES else _INVALID
    return value if value in BEHAVIORS else _INVALID


_RETRY_EXPECTED = {
    "duration": DURATION_EXPECTED,
    "attempts": "a whole number ≥ 1",
    "number": "a number > 0",
    "boolean": "true or false",
    "choice": " or ".join(f"`{name}`" for name in RETRY_TYPES),
    "behavior": " or ".join(f"`{name}`" for name in BEHAVIORS) + " (a new execution per retry is not supported)",
}


def _lookup(task_type: TaskType, name: str) -> tuple[PropertySpec | None, str | None]:
    for table in (COMMON_PROPERTIES, task_type.properties):
        for canonical, spec in table.items():
            if name == canonical or name in spec.aliases:
                return spec, canonical
    return None, None


def _is_duration(value: Any, spec: PropertySpec | None) -> bool:
    if spec is not None and spec.dynamic and isinstance(value, str) and is_template(value):
        return True  # checked when it renders
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


_INVALID = object()
_DECLARATION_CHECKS = {
    "inputs": lambda entries, known_task_ids: normalize_inputs(entries),
    "outputs": normalize_outputs,
}
"""The module that checks and normalizes each kind of flow declaration: (entries, task ids) →
(normalized entries, problems)."""
_CHECKS = {
    "string": lambda value, _: isinstance(value, str),
    "integer": lambda value, spec: isinstance(value, int) and not isinstance(value, bool) and value >= spec.minimum,
    "number": lambda value, _: isinstance(value, (int, float)) and not isinstance(value, bool),
    "values": lambda value, _: isinstance(value, (list, str)),
    "boolean": lambda value, _: isinstance(value, bool),
    "string_list": lambda value, _: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "mapping": lambda value, _: isinstance(value, dict),
    "duration": _is_duration,
    "choice": lambda value, spec: value in spec.choices,
    "any": lambda value, _: True,
}
_EXPECTED = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "values": "a list, or text that renders to a JSON list",
    "boolean": "true or false",
    "string_list": "a list of strings",
    "mapping": "a mapping",
    "duration": DURATION_EXPECTED,
    "any": "a value",
}


def normalize_flow(root: YMap, file: str) -> tuple[LoadedFlow | None, list[Problem]]:
    """Normalize a task-list flow; returns the flow (None if unusable) and the problems found."""
    normalizer = _Normalizer(file)
    flow = normalizer.flow(root)
    loaded = LoadedFlow(flow, normalizer.source_map) if flow is not None else None
    return loaded, normalizer.problems
