"""The JSON Schema of the flow language (SPEC §8, `tflow schema`), for editors.

Generated on demand from the same declarations the loader checks against — the task-type registry,
the dialect's flow keys, retry keys, input types and triggers — so a new task type or property
shows up in editors without anyone writing schema by hand. Draft-07, the newest draft that
yaml-language-server (VS Code's YAML extension) and most editors fully support. It accepts what the
loader accepts and rejects what the loader rejects where JSON Schema can say it; checks it cannot
say (template syntax, task id references, dependency cycles) stay with `tflow validate`.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from temporal_flows.expressions.extractors import EXTRACTOR_TYPES
from temporal_flows.language.dialects.steps import ON_ERROR_CHOICES, SOURCE_INPUTS, SOURCE_TASK_TYPES, STEP_KEYS
from temporal_flows.language.dialects.tasklist.flow import FLOW_KEYS
from temporal_flows.language.dialects.tasklist.values import ID_PATTERN
from temporal_flows.language.flow_outputs import OUTPUT_KEYS, REQUIRED_OUTPUT_KEYS
from temporal_flows.language.input_declarations import COMMON_KEYS as INPUT_COMMON_KEYS
from temporal_flows.language.input_declarations import TYPE_KEYS as INPUT_TYPE_KEYS
from temporal_flows.language.inputs import INPUT_TYPE_ALIASES, INPUT_TYPES
from temporal_flows.language.plugin_defaults import DEFAULTS_KEYS, NOT_DEFAULTED
from temporal_flows.language.task_schema import ref, spellings, task_definitions
from temporal_flows.language.triggers import RECOVER_MISSED, SCHEDULE_ALIASES, SCHEDULE_PROPERTIES, STOP_AFTER
from temporal_flows.model.durations import EXPECTED as DURATION_EXPECTED
from temporal_flows.model.retries import BEHAVIORS, RETRY_PROPERTIES, RETRY_TYPES

DRAFT = "http://json-schema.org/draft-07/schema#"

TEMPLATE_PATTERN = r"\{\{|\{%"
"""A value the loader treats as a template (`expressions.is_template`)."""

_NUMBER = r"\d+(?:\.\d+)?"
_SPACED_DIGITS = r"\d(?: *\d)*"
_SHORT_PART = rf" *{_SPACED_DIGITS}(?: *\. *{_SPACED_DIGITS})? *(?:[Mm] *[Ss]|[SsMmHhDdWw])"
DURATION_PATTERN = (
    rf"^\s*(?:[Pp](?=.*\d)(?:{_NUMBER}[Ww])?(?:{_NUMBER}[Dd])?(?:[Tt](?:{_NUMBER}[Hh])?(?:{_NUMBER}[Mm])?(?:{_NUMBER}[Ss])?)?"
    rf"|(?:{_SHORT_PART})+ *)\s*$"
)
"""What `durations.parse_duration` accepts as text, in the regex dialect JSON Schema uses (ECMA 262:
no inline flags, so case-insensitivity is spelled out): ISO 8601 (`PT5M`) or short (`5m`, `1h30m`)."""


_RETRY_VALUES: dict[str, dict[str, Any]] = {
    "choice": {"enum": list(RETRY_TYPES)},
    "attempts": {"type": "integer", "minimum": 1, "description": "total attempts, the first included"},
    "duration": ref("duration"),
    "number": {"type": "number", "exclusiveMinimum": 0},
    "boolean": {"type": "boolean"},
    "behavior": {"enum": list(BEHAVIORS)},
}


def retry_schema() -> dict[str, Any]:
    properties = {
        spelling: _RETRY_VALUES.get(kind, {}) for name, kind in RETRY_PROPERTIES.items() for spelling in spellings(name)
    }
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "anyOf": [{"required": [spelling]} for name in ("max_attempt", "max_duration") for spelling in spellings(name)],
    }


def _declarations(name: str) -> dict[str, Any]:
    """A flow's `inputs`/`outputs`/`triggers`: a list of mappings, each with an `id`."""
    return {"type": "array", "items": ref(name)}


_DECLARATION_VALUES: dict[str, dict[str, Any]] = {
    "id": ref("identifier"),
    "type": ref("inputType"),
    "description": {"type": "string"},
    "display_name": {"type": "string"},
    "required": {"type": "boolean"},
    "defaults": {"description": "the value when none is given"},
    "value": {"description": "rendered when the run ends"},
}
"""Values of the input and output keys shared by every type; the checks of a type's own keys
(validators) stay with `inputs.py`."""


def _keys(names: Iterable[str]) -> dict[str, Any]:
    return {spelling: _DECLARATION_VALUES.get(name, {}) for name in names for spelling in spellings(name)}


def input_schema() -> dict[str, Any]:
    """A flow input (or a pause's `onResume` entry): `id` (Kestra's older `name`) and `type`; the
    keys each type takes are listed for completion but left open — `inputs.py` checks them."""
    keys = dict.fromkeys([*INPUT_COMMON_KEYS, *(key for keys in INPUT_TYPE_KEYS.values() for key in keys)])
    return {
        "type": "object",
        "description": "a flow input (SPEC §5)",
        "required": ["type"],
        "anyOf": [{"required": ["id"]}, {"required": ["name"]}],
        "properties": {**_keys(keys), "name": ref("identifier")},
    }


def output_schema() -> dict[str, Any]:
    """A flow output: `id`, `type`, `value`, rendered when the run ends."""
    return {
        "type": "object",
        "description": "a flow output, rendered when the run ends",
        "required": list(dict.fromkeys(["id", *REQUIRED_OUTPUT_KEYS])),
        "properties": _keys(OUTPUT_KEYS),
        "additionalProperties": False,
    }


def labels_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A mapping of name → value, or Kestra's list of `{key, value}`."""
    pair = {
        "type": "object",
        "required": ["key", "value"],
        "properties": {"key": {"type": "string"}, "value": value},
        "additionalProperties": False,
    }
    return {
        "anyOf": [{"type": "object", "additionalProperties": value}, {"type": "array", "items": pair}],
        "description": "a mapping of name → value, or a list of `{key, value}`",
    }


_SCHEDULE_VALUES: dict[str, dict[str, Any]] = {
    "id": ref("identifier"),
    "type": {"enum": list(SCHEDULE_ALIASES)},
    "description": {"type": "string"},
    "cron": {"type": "string", "description": "a cron expression, e.g. `0 * * * *` or `@hourly`"},
    "with_seconds": {"type": "boolean", "description": "`cron` has a seconds field first"},
    "timezone": {"type": "string", "description": "an IANA time zone, e.g. `Europe/Paris`"},
    "inputs": {"type": "object", "description": "the inputs of each scheduled run"},
    "disabled": {"type": "boolean", "description": "deployed paused"},
    "labels": labels_schema({}),
    "late_maximum_delay": ref("duration"),
    "recover_missed_schedules": {"enum": list(RECOVER_MISSED)},
    "stop_after": {"type": "array", "minItems": 1, "items": {"enum": list(STOP_AFTER)}},
}
"""What each Schedule property (`triggers.SCHEDULE_PROPERTIES`) takes; a property added there later
is accepted as anything until it is described here."""


def trigger_schema() -> dict[str, Any]:
    """Any trigger type needs `id` and `type`; a Schedule takes exactly the properties that map onto
    a Temporal Schedule."""
    schedule = {
        "required": ["cron"],
        "properties": {
            spelling: _SCHEDULE_VALUES.get(name, {}) for name in SCHEDULE_PROPERTIES for spelling in spellings(name)
        },
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": "a flow trigger; `tflow deploy` makes each Schedule a Temporal Schedule",
        "required": ["id", "type"],
        "properties": {"id": ref("identifier"), "type": {"type": "string", "examples": list(SCHEDULE_ALIASES)}},
        "if": {"properties": {"type": {"enum": list(SCHEDULE_ALIASES)}}, "required": ["type"]},
        "then": schedule,
    }


_FLOW_PROPERTIES: dict[str, dict[str, Any]] = {
    "id": ref("identifier"),
    "namespace": ref("identifier"),
    "description": {"type": ["string", "null"]},
    "labels": {"anyOf": [{"type": "null"}, ref("labels")]},
    "variables": {"type": ["object", "null"], "description": "`vars.<name>` in templates"},
    "inputs": _declarations("input"),
    "outputs": _declarations("output"),
    "triggers": _declarations("trigger"),
    "tasks": ref("tasks"),
    "errors": ref("tasks"),
    "finally": ref("tasks"),
    "retry": ref("retry"),
    **{key: ref("pluginDefaults") for key in DEFAULTS_KEYS},
}

_DEFAULTED = "defaulted."
"""Prefix of the task definitions of a flow with plugin defaults: no property is required there."""


def task_list_flow_schema(defaulted: bool = False) -> dict[str, Any]:
    """A flow key the dialect learned after this table was written is accepted as anything. With
    `pluginDefaults` (`defaulted`), its tasks may leave to the defaults what they require."""
    properties = {key: _FLOW_PROPERTIES.get(key, {}) for key in FLOW_KEYS}
    if defaulted:
        properties.update({key: ref(_DEFAULTED + "tasks") for key in ("tasks", "errors", "finally")})
    return {
        "type": "object",
        "required": ["id", "namespace", "tasks"],
        "properties": properties,
        "additionalProperties": False,
    }


def plugin_defaults_schema() -> dict[str, Any]:
    """`pluginDefaults`: `[{type, values, forced}]`; which properties `values` may set depends on
    `type` (a prefix matches several types), which `tflow validate` checks."""
    entry = {
        "type": "object",
        "required": ["type", "values"],
        "properties": {
            "type": {"type": "string", "minLength": 1, "description": "a task type, or the start of type names"},
            "values": {"type": "object", "not": {"anyOf": [{"required": [key]} for key in NOT_DEFAULTED]},
                       "description": "property → value, merged under each matching task's own"},
            "forced": {"type": "boolean", "description": "the values win over the task's own"},
        },
        "additionalProperties": False,
    }
    return {"type": ["array", "null"], "items": entry, "description": "defaults of the flow's tasks by type (Kestra)"}


def defaulted_definitions(definitions: dict[str, Any]) -> dict[str, Any]:
    """The task definitions again, under `defaulted.`, without the properties they require: what a
    task leaves out may come from a plugin default. (Copied as JSON text, references renamed: the
    schema is rebuilt on each call and this keeps it a few milliseconds.)"""
    names = [name for name in definitions if name in ("tasks", "task", "dagEntry") or name.startswith("task.")]
    text = json.dumps({name: definitions[name] for name in names})
    for target in ("task", "dagEntry"):  # `task` also starts `tasks` and `task.<type>`
        text = text.replace(f'"#/definitions/{target}', f'"#/definitions/{_DEFAULTED}{target}')
    copies = json.loads(text)
    for name, definition in copies.items():
        if name.startswith("task.") and "properties" in definition:
            definition.pop("allOf", None)  # the required properties; a `basic` task's selecting field stays
    return {_DEFAULTED + name: definition for name, definition in copies.items()}


def step_flow_schema() -> dict[str, Any]:
    """A step flow (SPEC §3.1): `sources` by name, `flow` steps with the inputs their source takes
    (which source a step names, and its outputs' references, stay with `tflow validate`)."""
    inputs = {
        "url": {"type": "string"}, "method": {"type": "string"}, "headers": {"type": "object"}, "body": {}, "json": {},
        "command": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "number"]}}]},
        "env": {"type": "object"},
    }
    assert set(inputs) == {key for keys in SOURCE_INPUTS.values() for key in keys}
    extractor = {
        "type": "object",
        "required": ["name", "type"],
        "properties": {"name": {"type": "string"}, "type": {"enum": list(EXTRACTOR_TYPES)}, "value": {"type": "string"}},
        "additionalProperties": False,
    }
    step = {
        "type": "object",
        "required": ["name", "source"],
        "properties": {
            "name": ref("identifier"),
            "source": {"type": "string", "description": "a name of `sources`"},
            "description": {"type": "string"},
            "input": {"type": "object", "properties": inputs, "additionalProperties": False},
            "output": {"type": "array", "items": extractor},
            "depends_on": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "on_error": {"enum": list(ON_ERROR_CHOICES)},
        },
        "additionalProperties": False,
    }
    assert set(step["properties"]) == set(STEP_KEYS)
    source = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(SOURCE_TASK_TYPES)}},
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": "a step flow (`sources` + `flow`): steps run as a DAG of their dependencies",
        "required": ["flow"],
        "properties": {
            "sources": {"type": "object", "additionalProperties": source},
            "flow": {"type": "array", "minItems": 1, "items": step},
            "description": {"type": "string"},
        },
        "additionalProperties": False,
    }


_HAS_DEFAULTS = {"anyOf": [{"required": [key], "properties": {key: {"type": "array", "minItems": 1}}} for key in DEFAULTS_KEYS]}
_IS_STEP_FLOW = {"not": {"required": ["tasks"]}, "anyOf": [{"required": ["flow"]}, {"required": ["sources"]}]}


def flow_schema() -> dict[str, Any]:
    """The whole schema, freshly built on each call (about 2 ms)."""
    definitions: dict[str, Any] = {
        "identifier": {
            "type": "string",
            "pattern": ID_PATTERN.pattern,
            "patternErrorMessage": "a name of letters, digits, `_`, `-` or `.`",
        },
        "template": {"type": "string", "pattern": TEMPLATE_PATTERN, "description": "a template, checked when it renders"},
        "duration": {
            "description": "ISO 8601 (`PT5M`) or short (`5m`, `30s`, `1h30m`); a bare number is seconds",
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN, "patternErrorMessage": f"expected {DURATION_EXPECTED}"},
                {"type": "number"},
            ],
        },
        "retry": retry_schema(),
        "labels": labels_schema({"type": ["string", "number", "boolean"]}),
        "inputType": {"enum": [*INPUT_TYPES, *INPUT_TYPE_ALIASES]},
        "input": input_schema(),
        "output": output_schema(),
        "trigger": trigger_schema(),
        "taskListFlow": task_list_flow_schema(),
        "defaultedTaskListFlow": task_list_flow_schema(defaulted=True),
        "pluginDefaults": plugin_defaults_schema(),
        "stepFlow": step_flow_schema(),
    }
    definitions.update(task_definitions())
    definitions.update(defaulted_definitions(definitions))
    schema = {
        "$schema": DRAFT,
        "title": "temporal-flows flow",
        "description": "A flow of temporal-flows (Kestra-style tasks), as `tflow validate` reads it",
        "type": "object",
        "if": _IS_STEP_FLOW,
        "then": ref("stepFlow"),
        "else": {"if": _HAS_DEFAULTS, "then": ref("defaultedTaskListFlow"), "else": ref("taskListFlow")},
        "definitions": definitions,
    }
    return json.loads(json.dumps(schema))  # fresh: the tables above are shared (JSON: faster than deepcopy)
