"""Checks of one written value, each problem reported where the value stands: names (`id`,
`namespace`), mappings, and a task property by its `PropertySpec` kind (string, integer, duration,
choice ...). Structured properties have their own modules (`execution`, `tasks`, `declarations`)."""

from __future__ import annotations

import re
from typing import Any

from temporal_flows.expressions.templates import is_template
from temporal_flows.language.dialects.tasklist.report import Report
from temporal_flows.language.source import YMap
from temporal_flows.model.durations import EXPECTED as DURATION_EXPECTED
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import Location
from temporal_flows.tasks import PropertySpec

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
INVALID = object()
"""What a check returns for a value it reported a problem about (None can be a valid value)."""


def identifier(report: Report, node: YMap, key: str, what: str) -> str | None:
    """`node[key]` when it is a name (a flow's or task's `id`, a `namespace`), else None, reported."""
    if key not in node:
        report.problem(node.location, f"{what} is missing `{key}`")
        return None
    value = node[key]
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        report.problem(
            node.value_location(key),
            f"`{key}` must be a name of letters, digits, `_`, `-` or `.`, got {value!r}",
        )
        return None
    return value


def mapping(report: Report, node: YMap, key: str) -> dict[str, Any] | None:
    """`node[key]` when it is absent or a mapping, else None, reported."""
    value = node.get(key)
    if value is not None and not isinstance(value, dict):
        report.problem(node.value_location(key), f"`{key}` must be a mapping")
        return None
    return value


def checked_property(report: Report, spec: PropertySpec, key: str, value: Any, location: Location) -> Any:
    """A task property of a simple kind, checked and normalized (durations in seconds, `env` values
    as text); a template where the property is dynamic is kept for when it renders. INVALID when not."""
    if spec.kind == "choice":
        expected = "one of " + ", ".join(f"`{choice}`" for choice in spec.choices)
    elif spec.kind == "integer":
        expected = f"a whole number ≥ {spec.minimum}"
    else:
        expected = _EXPECTED[spec.kind]
    ok = _CHECKS[spec.kind](value, spec)
    if not ok:
        report.problem(location, f"`{key}` must be {expected}, got {_shown(value)}")
        return INVALID
    if spec.dynamic and isinstance(value, str) and is_template(value):
        return value
    problem = spec.check(value) if spec.check is not None else None
    if problem:
        report.problem(location, f"`{key}`: {problem}")
        return INVALID
    if spec.kind == "duration":
        return parse_duration(value)
    if spec.kind == "mapping" and key == "env":
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return value


def _shown(value: Any) -> str:
    """A wrong value as YAML's writer knows it: a mapping, a list, null, else the value itself."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else repr(value)


def is_duration(value: Any, spec: PropertySpec | None) -> bool:
    """Whether `value` reads as a duration (or is a template of a dynamic property)."""
    if spec is not None and spec.dynamic and isinstance(value, str) and is_template(value):
        return True  # checked when it renders
    if not isinstance(value, (str, int, float)):  # null, a mapping, a list: never a duration
        return False
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


_CHECKS = {
    "string": lambda value, _: isinstance(value, str),
    "integer": lambda value, spec: isinstance(value, int) and not isinstance(value, bool) and value >= spec.minimum,
    "number": lambda value, _: isinstance(value, (int, float)) and not isinstance(value, bool),
    "values": lambda value, _: isinstance(value, (list, str)),
    "boolean": lambda value, _: isinstance(value, bool),
    "string_list": lambda value, _: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "mapping": lambda value, _: isinstance(value, dict),
    "duration": is_duration,
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
