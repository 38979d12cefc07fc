"""The JSON Schema of tasks, generated from the task-type registry (`temporal_flows/tasks/`).

Each `TaskType` becomes one definition: every property it declares (and the common ones), in
snake_case and camelCase and under each alias, and nothing else; a task picks its definition by
`type`. Used by `temporal_flows.language.schema`, which adds the flow around it.
"""

from __future__ import annotations

from functools import cmp_to_key
from typing import Any, Iterable

from temporal_flows.model.keys import camel_case, snake_case
from temporal_flows.tasks import COMMON_PROPERTIES, TYPES, PropertySpec, TaskType, resolve_type
from temporal_flows.tasks.flowable.loop_until import MAX_ITERATIONS
from temporal_flows.tasks.kestra_aliases import RESPELLED, Respelling
from temporal_flows.tasks.runnable.task_runners import DOCKER_OPTIONS, DOCKER_RUNNERS, PROCESS_RUNNERS, PULL_POLICIES


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def spellings(name: str) -> list[str]:
    """The spellings of a snake_case property the loader reads as that property."""
    camel = camel_case(name)
    return [name, camel] if camel != name and snake_case(camel) == name else [name]


def _required_any(names: Iterable[str]) -> dict[str, Any]:
    """At least one of these spellings is present."""
    options = [{"required": [name]} for name in dict.fromkeys(names)]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _with_template(schema: dict[str, Any]) -> dict[str, Any]:
    """A dynamic property: the value, or a template checked when it renders (task start)."""
    return {"anyOf": [schema, ref("template")]}


def _choice_value(choice: Any) -> Any:
    return getattr(choice, "value", choice)


# -- property values ---------------------------------------------------------------------------------

_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "string_list": {"type": "array", "items": {"type": "string"}},
    "mapping": {"type": "object"},
    "duration": ref("duration"),
    "any": {},
    "values": {"type": ["array", "string"], "description": "a list, or text that renders to a JSON list"},
    "tasks": ref("tasks"),
    "task_cases": {
        "type": "object",
        "minProperties": 1,
        "description": "case value → list of tasks",
        "additionalProperties": ref("tasks"),
    },
    "dag_tasks": {"type": "array", "minItems": 1, "items": ref("dagEntry")},
    "handler": ref("handler"),
    "retry": ref("retry"),
    "inputs": {"type": "array", "items": ref("input")},
}
"""Each `PropertySpec.kind` (see the task-list dialect's `_CHECKS`) as JSON Schema; `integer`,
`choice` and `task_runner` depend on the spec or the task type and are built below."""

_PROPERTY_SCHEMAS: dict[str, dict[str, Any]] = {
    "worker_group": {
        "type": "object",
        "required": ["key"],
        "properties": {"key": {"type": "string", "minLength": 1, "description": "the Temporal task queue"}},
    },
    "output": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "type"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "type": {"enum": ["json", "jmespath", "text"]},
                "value": {"type": "string", "description": "the JMESPath expression (jmespath only)"},
            },
            "additionalProperties": False,
            "if": {"properties": {"type": {"const": "jmespath"}}},
            "then": {"required": ["value"]},
        },
    },
    "check_frequency": {  # a loop's (`temporal_flows.tasks.flowable.loop_until.frequency`)
        "type": "object",
        "properties": {
            spelling: {"anyOf": [schema, {"type": "null"}]}
            for name, schema in (("interval", ref("duration")), ("max_duration", ref("duration")),
                                 ("max_iterations", {"type": "integer", "minimum": 1, "maximum": MAX_ITERATIONS}))
            for spelling in spellings(name)
        },
        "additionalProperties": False,
    },
}
"""Properties the dialect checks beyond their kind."""


def _task_runner_schema(task_type: TaskType) -> dict[str, Any]:
    process = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(PROCESS_RUNNERS)}},
        "additionalProperties": False,
    }
    options: dict[str, Any] = {"type": {"enum": list(DOCKER_RUNNERS)}}
    for name in DOCKER_OPTIONS:
        camel = name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
        accepted = {"enum": list(PULL_POLICIES)} if name == "pull_policy" else {}
        options[name] = options[camel] = accepted
    docker = {"type": "object", "required": ["type"], "properties": options, "additionalProperties": False}
    return {"anyOf": [process, docker]}


def property_schema(spec: PropertySpec, task_type: TaskType | None = None, canonical: str = "") -> dict[str, Any]:
    """What one property accepts; an unknown kind (a newer dialect) accepts anything."""
    if canonical in _PROPERTY_SCHEMAS:
        schema = dict(_PROPERTY_SCHEMAS[canonical])
    elif spec.kind == "integer":
        schema = {"type": "integer", "minimum": spec.minimum}
    elif spec.kind == "choice":
        schema = {"enum": [_choice_value(choice) for choice in spec.choices]}
    elif spec.kind == "task_runner" and task_type is not None:
        schema = _task_runner_schema(task_type)
    else:
        schema = dict(_KIND_SCHEMAS.get(spec.kind, {}))
    if spec.dynamic and spec.kind not in ("string", "any", "values"):
        schema = _with_template(schema)
    if spec.kind == "tasks" and not spec.required:
        schema = {"anyOf": [schema, {"type": "null"}]}  # `defaults: null` is read as absent (Kestra)
    if spec.description:
        schema["description"] = spec.description
    if spec.default is not None:
        schema["default"] = _choice_value(spec.default)
    return schema


# -- tasks -------------------------------------------------------------------------------------------


def accepted_properties(task_type: TaskType) -> dict[str, tuple[str, PropertySpec]]:
    """snake_case name or alias → (canonical name, spec), looked up as the dialect does: the common
    properties first, then the type's own."""
    accepted: dict[str, tuple[str, PropertySpec]] = {}
    for table in (COMMON_PROPERTIES, task_type.properties):
        for canonical, spec in table.items():
            for name in (canonical, *spec.aliases):
                accepted.setdefault(name, (canonical, spec))
    return accepted


def task_type_schema(task_type: TaskType, respelling: Respelling | None = None) -> dict[str, Any]:
    """One type's task: every property in each spelling, nothing else, its required ones present;
    with `respelling`, as a Kestra type run as this one names them (`kestra_aliases.RESPELLED`)."""
    respelling = respelling or Respelling()
    theirs = {ours: name for name, ours in respelling.renamed.items()}
    properties: dict[str, Any] = {}
    for name, (canonical, spec) in accepted_properties(task_type).items():
        if canonical == "id":
            value = ref("identifier")
        elif canonical == "type":
            value = {"type": "string"}
        else:
            value = property_schema(spec, task_type, canonical)
        if name in respelling.listed:
            value = {"anyOf": [{"type": "string"}, value]}
        for spelling in spellings(theirs.get(name, name)):
            properties[spelling] = value
    required = [
        _required_any(spelling for name in (canonical, *spec.aliases) for spelling in spellings(theirs.get(name, name)))
        for canonical, spec in task_type.properties.items()
        if spec.required and canonical not in respelling.implied
    ]
    description = task_type.description + ("" if task_type.runs_yet else " (validates; runs in a later version)")
    schema: dict[str, Any] = {
        "title": task_type.name,
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["allOf"] = required
    return schema


def _selectors(task_type: TaskType) -> list[tuple[str, str]]:
    """(field, type it selects) for a type decided by its fields (`basic`), in the order its
    `delegate` tries them — found by asking the delegate about every known property name."""
    assert task_type.delegate is not None
    names = {name for other in TYPES for name in accepted_properties(other)}
    chosen = {name: task_type.delegate({name: None}) for name in sorted(names)}
    selecting = [name for name, selected in chosen.items() if selected]

    def precedence(first: str, second: str) -> int:
        if chosen[first] == chosen[second]:
            return 0
        return -1 if task_type.delegate({first: None, second: None}) == chosen[first] else 1  # type: ignore[misc]

    return [(name, str(chosen[name])) for name in sorted(selecting, key=cmp_to_key(precedence))]


def delegated_schema(task_type: TaskType) -> dict[str, Any]:
    """A `basic` task: the properties of the type its first selecting field names."""
    selectors = [(field, chosen.name) for field, name in _selectors(task_type) if (chosen := resolve_type(name)) is not None]
    schema: dict[str, Any] = {
        **_required_any(spelling for field, _ in selectors for spelling in spellings(field)),
        "description": f"a `{task_type.name}` task is {task_type.description}",
    }
    for field, selected in reversed(selectors):
        schema = {"if": _required_any(spellings(field)), "then": ref(f"task.{selected}"), "else": schema}
    return {"title": task_type.name, "description": task_type.description, "type": "object", **schema}


def _task_dispatch() -> dict[str, Any]:
    """A task: `id` and `type`, then the properties its type declares."""
    names: list[str] = []
    descriptions: list[str] = []
    branches = []
    for task_type in TYPES:
        own = [task_type.name, *(alias for alias in task_type.aliases if alias not in RESPELLED)]
        respelled = [alias for alias in task_type.aliases if alias in RESPELLED]
        names += [*own, *respelled]
        descriptions += [task_type.description] * (len(own) + len(respelled))
        for enum, definition in ((own, task_type.name), *(([alias], f"{task_type.name}@{alias}") for alias in respelled)):
            branches.append({"if": {"properties": {"type": {"enum": enum}}, "required": ["type"]}, "then": ref(f"task.{definition}")})
    return {
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": ref("identifier"),
            "type": {"type": "string", "enum": names, "enumDescriptions": descriptions},
        },
        "allOf": branches,
    }


def task_definitions() -> dict[str, Any]:
    """`tasks`, `task`, what flowables hold (`dagEntry`, `handler`) and `task.<type>` for each type.
    They refer to `identifier`, `template`, `duration`, `retry` and `input`, which the flow's
    schema defines."""
    definitions: dict[str, Any] = {
        "tasks": {"type": "array", "minItems": 1, "items": ref("task")},
        "task": _task_dispatch(),
        "dagEntry": {
            "type": "object",
            "required": ["task"],
            "properties": {
                "task": ref("task"),
                **{spelling: {"type": ["array", "null"], "items": {"type": "string"}} for spelling in spellings("depends_on")},
            },
            "additionalProperties": False,
        },
        "handler": {
            "type": "object",
            "properties": {
                "next": {"type": ["string", "null"], "description": "a later task of the same list"},
                "with": {"type": ["object", "null"], "description": "name → template, the target's `input`"},
            },
            "additionalProperties": False,
        },
    }
    for task_type in TYPES:
        definitions[f"task.{task_type.name}"] = (
            delegated_schema(task_type) if task_type.delegate is not None else task_type_schema(task_type)
        )
        for alias in task_type.aliases:
            if alias in RESPELLED:
                definitions[f"task.{task_type.name}@{alias}"] = task_type_schema(task_type, RESPELLED[alias])
    return definitions
