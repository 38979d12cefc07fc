"""Step flows (flowtoy's dialect, SPEC §3.1) → the same model as a task-list `dag`.

`sources` name a runnable (`rest` → `http`, `process` → `commands`); each step of `flow` becomes a
task of its source's type, and the steps together one `dag` task, the flow's only top-level task, so
they run on the one scheduler. A step depends on its `depends_on` plus every step whose outputs its
`input` templates read (`{{ flows.<step>.<output> }}`, found in the template's AST). Both are kept
apart in each step's properties (`depends_on` declared, `inferred_depends_on` inferred) for
`tflow graph`; the dag's `depends_on` is their union. Every problem is reported at once.

A `process` step runs in the flow file's directory (a path on the machine that loaded the flow):
its worker must see that directory, as embedded and local workers do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporal_flows.expressions.extractors import extractor_problem
from temporal_flows.expressions.templates import ExpressionError, referenced_outputs, template_strings
from temporal_flows.language.dialects.cycles import dependency_cycles
from temporal_flows.language.source import LoadedFlow, SourceMap, YList, YMap
from temporal_flows.model.flow import Flow, Location, Task
from temporal_flows.model.flow import OnFailure, Strategy
from temporal_flows.model.problems import Problem, did_you_mean

STEP_FLOW_MAX_WORKERS = 4
"""A step flow's `--max-workers` when the run sets none (SPEC §3.1)."""
STEP_FLOW_NAMESPACE = "default"
"""Step flows have no namespace of their own."""
SOURCE_TASK_TYPES = {"rest": "http", "process": "commands"}
"""A source's `type` → the runnable task type its steps become (one registry for steps and tasks)."""
SOURCE_INPUTS = {
    "rest": ("url", "method", "headers", "body", "json"),
    "process": ("command", "env"),
}
"""The `input` keys each source type takes."""
STEP_KEYS = ("name", "source", "input", "output", "depends_on", "on_error", "description")
ON_ERROR_CHOICES = ("fail", OnFailure.SKIP, OnFailure.CONTINUE)
ROOT_KEYS = ("sources", "flow", "description")


def is_step_flow(root: YMap) -> bool:
    """Step flows are told apart by their root keys: `flow`/`sources` and no `tasks`."""
    return "tasks" not in root and ("flow" in root or "sources" in root)


class _StepNormalizer:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self.source_map = SourceMap()
        self.on_error: dict[str, str] = {}
        """Step name → its `on_error` (kept on the dag as `on_failure`, not on the step's task)."""

    def problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(location.file, location.line, location.column, message))

    def flow(self, root: YMap) -> Flow | None:
        for key in root:
            if key not in ROOT_KEYS:
                self.problem(root.key_location(key), f"unknown key `{key}` in a step flow (expected `sources`, `flow`){did_you_mean(key, list(ROOT_KEYS))}")
        sources = self._sources(root)
        steps_node = root.get("flow")
        if not isinstance(steps_node, YList) or not steps_node:
            self.problem(root.value_location("flow") if "flow" in root else root.location, "`flow` must be a non-empty list of steps")
            return None
        steps = [
            (node, location) for node, location in zip(steps_node, steps_node.item_locations)
            if self._is_step(node, location)
        ]
        outputs = {str(node["name"]): self._output_names(node) for node, _ in steps}
        tasks = [task for node, location in steps if (task := self._task(node, location, sources, outputs)) is not None]
        self._check_graph(tasks)
        dag = Task(
            id=_dag_id([task.id for task in tasks]),
            type="dag",
            tasks=tasks,
            properties={
                "depends_on": {task.id: _all_dependencies(task) for task in tasks if _all_dependencies(task)},
                "strategy": Strategy.FAIL_FAST,
                "on_failure": {task.id: self.on_error[task.id] for task in tasks if self.on_error.get(task.id, "fail") != "fail"},
            },
            location=steps_node.location,
        )
        dag.properties = {key: value for key, value in dag.properties.items() if value}
        description = root.get("description") if isinstance(root.get("description"), str) else None
        return Flow(
            id=Path(self.file).stem, namespace=STEP_FLOW_NAMESPACE, tasks=[dag], description=description,
            source_file=self.file, dialect="steps",
        )

    def _sources(self, root: YMap) -> dict[str, str]:
        """Source name → its type (only well-formed sources)."""
        node = root.get("sources")
        if node is None:
            return {}
        if not isinstance(node, YMap):
            self.problem(root.value_location("sources"), "`sources` must be a mapping of name → {type: rest | process}")
            return {}
        sources: dict[str, str] = {}
        for name, source in node.items():
            location = node.value_location(name)
            if not isinstance(source, YMap) or "type" not in source:
                self.problem(location, f"source `{name}` must be a mapping with `type` (rest or process)")
                continue
            for key in source:
                if key != "type":
                    self.problem(source.key_location(key), f"source `{name}`: unknown key `{key}` (expected `type`)")
            kind = source["type"]
            if not isinstance(kind, str) or kind not in SOURCE_TASK_TYPES:
                hint = did_you_mean(str(kind), list(SOURCE_TASK_TYPES))
                self.problem(source.value_location("type"), f"source `{name}`: unknown type `{kind}` (expected rest or process){hint}")
                continue
            sources[str(name)] = kind
        return sources

    def _is_step(self, node: Any, location: Location) -> bool:
        if not isinstance(node, YMap):
            self.problem(location, "a step must be a mapping with `name`, `source` and `input`")
            return False
        name = node.get("name")
        if not isinstance(name, str) or not name:
            self.problem(node.value_location("name") if "name" in node else location, "a step needs a `name` (text)")
            return False
        self.source_map.declared.append((name, node.location))
        return True

    def _output_names(self, node: YMap) -> list[str]:
        output = node.get("output")
        if not isinstance(output, list):
            return []
        return [str(item["name"]) for item in output if isinstance(item, dict) and "name" in item]

    def _task(self, node: YMap, location: Location, sources: dict[str, str], outputs: dict[str, list[str]]) -> Task | None:
        name = str(node["name"])
        for key in node:
            if key not in STEP_KEYS:
                self.problem(node.key_location(key), f"step `{name}`: unknown key `{key}`{did_you_mean(key, list(STEP_KEYS))}")
        source = node.get("source")
        if not isinstance(source, str) or source not in sources:
            if "source" not in node:
                self.problem(location, f"step `{name}` needs a `source`")
            else:
                hint = did_you_mean(str(source), list(sources))
                self.problem(node.value_location("source"), f"step `{name}`: unknown source `{source}`{hint}")
            return None
        kind = sources[source]
        task = Task(id=name, type=SOURCE_TASK_TYPES[kind], location=node.location, description=node.get("description"))
        self._input(task, node, kind)
        self._output(task, node)
        self._on_error(task, node)
        self._dependencies(task, node, outputs)
        return task

    def _input(self, task: Task, node: YMap, kind: str) -> None:
        data = node.get("input")
        if data is None:
            data = YMap()
            data.location, data.key_locations, data.value_locations = node.location, {}, {}
        if not isinstance(data, YMap):
            self.problem(node.value_location("input"), f"step `{task.id}`: `input` must be a mapping")
            return
        allowed = SOURCE_INPUTS[kind]
        for key, value in data.items():
            if key not in allowed:
                hint = did_you_mean(key, list(allowed))
                taken = ", ".join(f"`{name}`" for name in allowed)
                self.problem(data.key_location(key), f"step `{task.id}`: a {kind} source does not take input `{key}` (it takes {taken}){hint}")
                continue
            prop = self._property(task, kind, key, value, data.value_location(key))
            if prop is None:
                continue
            if key == "command":
                commands, arguments = _command(value)
                task.properties["commands"] = commands
                task.properties["env"] = {**task.properties.get("env", {}), **arguments}
                self.source_map.properties[(task.location, "env")] = data.value_location(key)
            else:
                task.properties[prop] = value if key != "env" else {**value, **task.properties.get("env", {})}
            self.source_map.properties[(task.location, prop)] = data.value_location(key)
        required = "url" if kind == "rest" else "command"
        if required not in data:
            self.problem(data.location, f"step `{task.id}`: a {kind} source needs input `{required}`")
        if kind == "process":
            task.properties["working_directory"] = str(Path(self.file).resolve().parent)

    def _property(self, task: Task, kind: str, key: str, value: Any, location: Location) -> str | None:
        """The task property an input becomes, or None after a problem with its value."""
        expected = {"headers": dict, "env": dict, "url": str, "method": str, "command": (str, list)}.get(key)
        if expected is not None and not isinstance(value, expected):
            what = {"headers": "a mapping", "env": "a mapping", "command": "a list of arguments or a command line"}.get(key, "text")
            self.problem(location, f"step `{task.id}`: input `{key}` must be {what}")
            return None
        if key == "command" and isinstance(value, list) and not all(isinstance(item, (str, int, float)) for item in value):
            self.problem(location, f"step `{task.id}`: input `command` must be a list of arguments")
            return None
        return {"url": "uri", "command": "commands"}.get(key, key)

    def _output(self, task: Task, node: YMap) -> None:
        if "output" not in node:
            return
        value = node["output"]
        problem = extractor_problem(value)
        if problem is not None:
            self.problem(node.value_location("output"), f"step `{task.id}`: `output` {problem}")
            return
        task.properties["output"] = [dict(item) for item in value]

    def _on_error(self, task: Task, node: YMap) -> None:
        if "on_error" not in node:
            return
        value = node["on_error"]
        if value not in ON_ERROR_CHOICES:
            hint = did_you_mean(str(value), list(ON_ERROR_CHOICES))
            self.problem(node.value_location("on_error"), f"step `{task.id}`: `on_error` must be fail, skip or continue{hint}")
            return
        self.on_error[task.id] = value

    def _dependencies(self, task: Task, node: YMap, outputs: dict[str, list[str]]) -> None:
        declared = node.get("depends_on", [])
        location = node.value_location("depends_on")
        if isinstance(declared, str):
            declared = [declared]
        if not isinstance(declared, list) or not all(isinstance(item, str) for item in declared):
            self.problem(location, f"step `{task.id}`: `depends_on` must be a list of step names")
            declared = []
        known = list(outputs)
        for step in declared:
            if step == task.id:
                self.problem(location, f"step `{task.id}` depends on itself")
            elif step not in outputs:
                self.problem(location, f"step `{task.id}` depends on unknown step `{step}`{did_you_mean(step, known)}")
        inferred: list[str] = []
        data = node.get("input")
        for key, value in (data.items() if isinstance(data, YMap) else ()):
            for template in template_strings(value):
                try:
                    references = referenced_outputs(template)
                except ExpressionError:
                    continue  # reported by validation with the template's place
                for step, output in sorted(references, key=str):
                    if step == task.id or step not in outputs:
                        continue  # validation reports unknown tasks and a task reading its own outputs
                    if output is not None and output not in outputs[step]:
                        declared_names = ", ".join(f"`{name}`" for name in outputs[step]) or "none"
                        hint = did_you_mean(output, outputs[step])
                        self.problem(data.value_location(key), f"step `{task.id}`, input `{key}`: step `{step}` has no output `{output}`{hint} (its outputs: {declared_names})")
                    if step not in inferred and step not in declared:
                        inferred.append(step)
        task.properties["depends_on"] = [step for step in declared if step in outputs and step != task.id]
        task.properties["inferred_depends_on"] = inferred

    def _check_graph(self, tasks: list[Task]) -> None:
        relation = {task.id: _all_dependencies(task) for task in tasks}
        places = {task.id: task.location for task in tasks}
        for cycle in dependency_cycles(relation):
            members = " → ".join(f"`{member}`" for member in [*cycle, cycle[0]])
            location = places[cycle[0]] or Location(self.file, 1, 1)
            self.problem(location, f"the steps form a dependency cycle: {members}")
        seen: dict[str, Location | None] = {}
        for task in tasks:
            if task.id in seen:
                first = seen[task.id]
                self.problem(task.location or Location(self.file, 1, 1), f"duplicate step name `{task.id}`" + (f" (first defined at line {first.line})" if first else ""))
            seen.setdefault(task.id, task.location)


def _all_dependencies(task: Task) -> list[str]:
    """Declared then inferred, each once."""
    found = [*task.properties.get("depends_on", []), *task.properties.get("inferred_depends_on", [])]
    return list(dict.fromkeys(found))


ARGUMENT_VARIABLE = "TFLOW_ARG_{}"
"""Where a `process` step's arguments travel: each in a variable of its own, so a rendered template
never meets shell quoting."""


def _command(value: str | list[Any]) -> tuple[list[str], dict[str, str]]:
    """A `process` step's `command` as the shell command a `commands` task runs, plus the variables it
    reads: a string is a command line; an argument list runs as is, each argument (a template
    rendered when the step starts) passed in its own variable."""
    if isinstance(value, str):
        return [value], {}
    names = [ARGUMENT_VARIABLE.format(index) for index in range(len(value))]
    return [" ".join(f'"${name}"' for name in names)], {name: str(item) for name, item in zip(names, value)}


def _dag_id(step_names: list[str]) -> str:
    """The id of the dag holding the steps: `steps`, unless a step already has that name."""
    candidate = "steps"
    while candidate in step_names:
        candidate += "_"
    return candidate


def normalize_flow(root: YMap, file: str) -> tuple[LoadedFlow | None, list[Problem]]:
    """Normalize a step flow; returns the flow (None if unusable) and the problems found."""
    normalizer = _StepNormalizer(file)
    flow = normalizer.flow(root)
    if flow is not None:
        normalizer.source_map.declared.append((flow.tasks[0].id, flow.tasks[0].location or Location(file, 1, 1)))
    loaded = LoadedFlow(flow, normalizer.source_map) if flow is not None else None
    return loaded, normalizer.problems
