"""Tasks of a task-list flow, depth first: each task's `id` and `type`, then each property by its
`PropertySpec` kind. Child task lists (`tasks`, branches, a switch's `cases`, a dag's entries) recurse
here; simple values are checked in `values`, how a task runs (retry, handlers, runner) in `execution`."""

from __future__ import annotations

from typing import Any

from temporal_flows.language.dialects.cycles import dependency_cycles
from temporal_flows.language.dialects.tasklist.declarations import declarations
from temporal_flows.language.dialects.tasklist.execution import handler, retry, task_runner, worker_group
from temporal_flows.language.dialects.tasklist.report import Report
from temporal_flows.language.dialects.tasklist.respelled import respelled, written_name
from temporal_flows.language.dialects.tasklist.values import INVALID, checked_property, identifier
from temporal_flows.language.source import YList, YMap
from temporal_flows.model.flow import Location, Task
from temporal_flows.model.keys import snake_case
from temporal_flows.model.problems import did_you_mean
from temporal_flows.tasks import COMMON_PROPERTIES, PropertySpec, TaskType, known_type_names, resolve_type
from temporal_flows.tasks.flowable.switch import CASE_PREFIX


class TaskNormalizer:
    """Task mappings → `Task`s; every problem goes to the report, at the key or value it is about."""

    def __init__(self, report: Report):
        self.report = report

    def task_list(self, node: YMap, key: str, owner: str) -> list[Task] | None:
        """`node[key]`, a non-empty list of tasks; None (reported) when it is missing or not a list."""
        if key not in node:
            self.report.problem(node.location, f"{owner} is missing `{key}` (a list of tasks)")
            return None
        items = node[key]
        if not isinstance(items, YList) or not items:
            self.report.problem(node.value_location(key), f"`{key}` of {owner} must be a non-empty list of tasks")
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
            for name in ("on_success", "on_error"):
                target = (task.properties.get(name) or {}).get("next")
                if target is None:
                    continue
                location = self.report.source_map.locate(task.location, name) if task.location else Location(self.report.file, 1, 1)
                if target not in position:
                    hint = did_you_mean(str(target), list(position))
                    self.report.problem(location, f"`{name}.next` of `{task.id}`: `{target}` is not a task of the same list{hint}")
                elif position[target] <= index:
                    self.report.problem(location, f"`{name}.next` of `{task.id}`: `{target}` comes before it; `next` only moves forward")

    def task(self, node: Any, location: Location) -> Task | None:
        """One task with its properties checked; None (reported) when its id or type is unusable."""
        if not isinstance(node, YMap):
            self.report.problem(location, "a task must be a mapping with `id` and `type`")
            return None
        task_id = identifier(self.report, node, "id", "task")
        if task_id is not None:
            self.report.source_map.declared.append((task_id, node.location))
        task_type = self._task_type(node)
        if task_id is None or task_type is None:
            return None
        written_type = node["type"]
        node = respelled(node, written_type)
        task = Task(id=task_id, type=task_type.name, location=node.location)
        given = set()
        for key, value in node.items():
            given.add(self._property(task, task_type, node, key, value))
        for name, spec in task_type.properties.items():
            if spec.required and name not in given:
                missing = written_name(written_type, name)
                self.report.problem(node.location, f"task `{task_id}` ({task_type.name}) is missing `{missing}`")
        chosen = [name for name in task_type.one_of if name in given]
        if task_type.one_of and len(chosen) != 1:
            names = " or ".join(f"`{name}`" for name in task_type.one_of)
            self.report.problem(node.location, f"task `{task_id}` ({task_type.name}) needs exactly one of {names}"
                                + (f", not {len(chosen)}" if chosen else ""))
        if task_type.default_properties is not None:
            task_type.default_properties(task, written_type)
        return task

    def _task_type(self, node: YMap) -> TaskType | None:
        """The registered type `type` names (a delegating type resolved by the task's properties)."""
        if "type" not in node:
            self.report.problem(node.location, "task is missing `type`")
            return None
        name = node["type"]
        location = node.value_location("type")
        task_type = resolve_type(name) if isinstance(name, str) else None
        if task_type is None:
            hint = did_you_mean(str(name), known_type_names())
            self.report.problem(location, f"unknown task type `{name}`{hint}")
            return None
        if task_type.delegate is not None:
            chosen = task_type.delegate({snake_case(key): value for key, value in node.items()})
            if chosen is None:
                self.report.problem(location, f"a `{name}` task is {task_type.description}, and has none of them")
                return None
            return resolve_type(chosen)
        return task_type

    def _property(self, task: Task, task_type: TaskType, node: YMap, key: str, value: Any) -> str | None:
        """Check and assign one property; returns its canonical name when it is a known one."""
        name = snake_case(key)
        spec, canonical = _lookup(task_type, name)
        location = node.key_location(key)
        self.report.source_map.properties[(node.location, canonical or name)] = node.value_location(key)
        if spec is None:
            candidates = [*COMMON_PROPERTIES, *task_type.properties]
            self.report.problem(location, f"unknown property `{key}` for a `{task_type.name}` task{did_you_mean(name, candidates)}")
            return None
        if name in ("id", "type"):
            return canonical
        value_location = node.value_location(key)
        if spec.kind == "tasks" and value is None and not spec.required:
            return canonical  # Kestra reads an optional list written as `null` (a switch's `defaults: null`) as absent
        if spec.kind == "tasks":
            children = self.task_list(node, key, owner=f"task `{task.id}`") or []
            if canonical == "tasks":
                task.tasks = children
            else:
                task.branches[canonical] = children
        elif spec.kind == "task_cases":
            self._cases(task, value, value_location)
        elif spec.kind == "dag_tasks":
            self._dag(task, value, value_location)
        elif spec.kind == "inputs":  # a pause's `onResume`: declared as a flow's `inputs` are
            task.properties[canonical] = declarations(self.report, node, key, kind="inputs")
        else:
            self._assign_checked(task, spec, canonical, key, value, value_location)
        return canonical

    def _assign_checked(self, task: Task, spec: PropertySpec, canonical: str, key: str, value: Any, location: Location) -> None:
        """A property without child tasks, checked by its kind, then kept where the model holds it."""
        if spec.kind == "retry":
            checked = retry(self.report, value, location)
            if checked is not INVALID:
                task.retry = checked
        elif spec.kind == "handler":
            checked = handler(self.report, canonical, value, location)
            if checked is not INVALID:
                task.properties[canonical] = checked
        elif spec.kind == "task_runner":
            checked = task_runner(self.report, value, location)
            if checked is not INVALID:
                task.properties["task_runner"] = checked
        else:
            checked = checked_property(self.report, spec, key, value, location)
            if checked is INVALID:
                return
            if canonical == "timeout":
                task.timeout_s = checked
            elif canonical == "worker_group":
                task.worker_group = worker_group(self.report, checked, location)
            elif canonical in ("description", "disabled", "run_if", "allow_failure", "allow_warning"):
                setattr(task, canonical, checked)
            elif canonical != "log_level" or task.type == "log":  # a `log` task's logLevel filters its messages
                task.properties[canonical] = checked

    def _cases(self, task: Task, value: Any, location: Location) -> None:
        """A switch's `cases`: case value → list of tasks, kept as branches `case <value>`."""
        if not isinstance(value, YMap) or not value:
            self.report.problem(location, "`cases` must be a mapping of case value → list of tasks")
            return
        for case in value:
            children = self.task_list(value, case, owner=f"case `{case}` of task `{task.id}`")
            task.branches[CASE_PREFIX + str(case)] = children or []

    def _dag(self, task: Task, value: Any, location: Location) -> None:
        """`tasks: [{task: {...}, dependsOn: [ids]}]` → children plus the `depends_on` relation;
        unknown ids and cycles are problems here, where their lines are known."""
        if not isinstance(value, YList) or not value:
            self.report.problem(location, "`tasks` of a dag must be a non-empty list of `{task, dependsOn}`")
            return
        depends_on: dict[str, list[str]] = {}
        places: dict[str, Location] = {}
        for item, item_location in zip(value, value.item_locations):
            if not isinstance(item, YMap) or "task" not in item:
                self.report.problem(item_location, "a dag entry must be a mapping with `task` (and optional `dependsOn`)")
                continue
            for key in item:
                if snake_case(key) not in ("task", "depends_on"):
                    self.report.problem(item.key_location(key), f"unknown dag entry property `{key}` (expected `task`, `dependsOn`)")
            child = self.task(item["task"], item.value_location("task"))
            if child is None:
                continue
            task.tasks.append(child)
            needed = next((item[key] for key in item if snake_case(key) == "depends_on"), None) or []
            if not isinstance(needed, list) or not all(isinstance(entry, str) for entry in needed):
                self.report.problem(item_location, f"`dependsOn` of `{child.id}` must be a list of task ids")
                continue
            depends_on[child.id] = list(needed)
            places[child.id] = item_location
        self._check_dependencies(task, depends_on, places)
        task.properties["depends_on"] = {child_id: needed for child_id, needed in depends_on.items() if needed}

    def _check_dependencies(self, task: Task, depends_on: dict[str, list[str]], places: dict[str, Location]) -> None:
        """A dag's `dependsOn` names its own tasks and forms no cycle."""
        known = [child.id for child in task.tasks]
        for child_id, needed in depends_on.items():
            for dependency in needed:
                if dependency not in known:
                    hint = did_you_mean(dependency, known)
                    self.report.problem(places[child_id], f"`{child_id}` depends on `{dependency}`, which is not a task of dag `{task.id}`{hint}")
        for cycle in dependency_cycles(depends_on):
            members = " → ".join(f"`{member}`" for member in [*cycle, cycle[0]])
            self.report.problem(places[cycle[0]], f"dag `{task.id}` has a dependency cycle: {members}")


def _lookup(task_type: TaskType, name: str) -> tuple[PropertySpec | None, str | None]:
    """A property's spec and canonical name, by its name or one of its aliases."""
    for table in (COMMON_PROPERTIES, task_type.properties):
        for canonical, spec in table.items():
            if name == canonical or name in spec.aliases:
                return spec, canonical
    return None, None
