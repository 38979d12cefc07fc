"""Checking a flow's input declarations at load time (SPEC §5): each declaration's type, the keys
and validators that type takes, and its `defaults` as a value of that type. Resolving the values a
run is given is `inputs`' part."""

from __future__ import annotations

import re
from typing import Any

from temporal_flows.language.inputs import ARRAY_ITEM_TYPES, INPUT_TYPE_ALIASES, INPUT_TYPES, InvalidValue, canonical_type, coerce, shown_value
from temporal_flows.model.keys import camel_case
from temporal_flows.model.problems import EntryProblem, did_you_mean

COMMON_KEYS = ("id", "type", "required", "defaults", "display_name", "description")
"""Keys every input declaration may have (snake_case; `name` is Kestra's older `id`)."""

TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "STRING": ("validator", "min_length", "max_length"),
    "SECRET": ("validator", "min_length", "max_length"),
    "INT": ("min", "max"),
    "FLOAT": ("min", "max"),
    "DURATION": ("min", "max"),
    "DATE": ("after", "before"),
    "DATETIME": ("after", "before"),
    "TIME": ("after", "before"),
    "SELECT": ("values", "allow_custom_value"),
    "MULTISELECT": ("values", "allow_custom_value"),
    "ARRAY": ("item_type",),
}
"""The validators and settings each type takes besides COMMON_KEYS."""

REQUIRED_TYPE_KEYS: dict[str, tuple[str, ...]] = {"SELECT": ("values",), "MULTISELECT": ("values",), "ARRAY": ("item_type",)}


def normalize_inputs(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[EntryProblem]]:
    """Check a flow's input declarations (snake_case keys, `name` already read as `id`); returns
    them normalized (canonical type, validators and defaults in JSON form) and every problem."""
    normalized: list[dict[str, Any]] = []
    problems: list[EntryProblem] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        input_id = entry.get("id")
        if input_id in seen:
            problems.append(EntryProblem(index, "id", f"duplicate input id `{input_id}`"))
        seen.add(input_id)
        declaration, found = _normalize_input(entry)
        problems.extend(EntryProblem(index, key, message, at_key) for key, message, at_key in found)
        normalized.append(declaration)
    return normalized, problems


def _normalize_input(entry: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str | None, str, bool]]]:
    found: list[tuple[str | None, str, bool]] = []
    name = f"input `{entry.get('id')}`"
    declaration = dict(entry)
    type_name = _declared_type(entry, name, found)
    if type_name is None:
        return declaration, found
    declaration["type"] = type_name
    allowed = (*COMMON_KEYS, *TYPE_KEYS.get(type_name, ()))
    name = f"input `{entry.get('id')}` ({type_name})"
    for key in entry:
        if key not in allowed:
            hint = did_you_mean(camel_case(key), [camel_case(known) for known in allowed])
            found.append((key, f"{name}: unknown property `{camel_case(key)}`{hint}", True))
    unknown_keys = len(found)
    for key in REQUIRED_TYPE_KEYS.get(type_name, ()):
        if key not in entry:
            found.append((None, f"{name} is missing `{camel_case(key)}`", False))
    for key in TYPE_KEYS.get(type_name, ()):
        if key in entry and key in allowed:
            checked = _check_setting(type_name, key, entry[key])
            if isinstance(checked, InvalidValue):
                found.append((key, f"{name}: `{camel_case(key)}` must be {checked}, got {shown_value(entry[key])}", False))
            else:
                declaration[key] = checked
    required = entry.get("required", True)
    if not isinstance(required, bool):
        found.append(("required", f"{name}: `required` must be true or false, got {shown_value(required)}", False))
    if entry.get("defaults") is not None and len(found) == unknown_keys:  # its settings are usable
        try:
            declaration["defaults"] = coerce(type_name, entry["defaults"], declaration)
        except ValueError as error:
            found.append(("defaults", f"{name}: `defaults` must be {error}, got {shown_value(entry['defaults'], type_name)}", False))
    for key in ("display_name", "description"):
        if key in entry and not isinstance(entry[key], str):
            found.append((key, f"{name}: `{camel_case(key)}` must be text, got {shown_value(entry[key])}", False))
    return declaration, found


def _declared_type(entry: dict[str, Any], name: str, found: list[tuple[str | None, str, bool]]) -> str | None:
    given = entry.get("type")
    if given is None:
        found.append((None, f"{name} is missing `type` (one of {', '.join(INPUT_TYPES)})", False))
        return None
    type_name = canonical_type(given)
    if type_name is not None:
        return type_name
    hint = did_you_mean(str(given).upper(), [*INPUT_TYPES, *INPUT_TYPE_ALIASES])
    if not hint and isinstance(given, str) and canonical_type(given.upper()):
        hint = f" (did you mean `{given.upper()}`?)"
    found.append(("type", f"{name}: unknown input type `{given}`{hint} (expected one of {', '.join(INPUT_TYPES)})", False))
    return None


def _check_setting(type_name: str, key: str, value: Any) -> Any:
    """A validator's value checked and in JSON form; an `InvalidValue` (returned) says what was expected."""
    try:
        if key == "validator":
            if not isinstance(value, str):
                raise InvalidValue("a regular expression")
            try:
                re.compile(value)
            except re.error as error:
                raise InvalidValue(f"a valid regular expression ({error})") from None
            return value
        if key in ("min_length", "max_length"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidValue("a whole number ≥ 0")
            return value
        if key == "allow_custom_value":
            if not isinstance(value, bool):
                raise InvalidValue("true or false")
            return value
        if key == "values":
            if not isinstance(value, list) or not value:
                raise InvalidValue("a non-empty list of choices")
            return [coerce("STRING", choice) for choice in value]  # as a STRING input reads text
        if key == "item_type":
            if canonical_type(value) not in ARRAY_ITEM_TYPES:
                raise InvalidValue("one of " + ", ".join(ARRAY_ITEM_TYPES))
            return canonical_type(value)
        return coerce(type_name, value)  # min/max/after/before: a value of the input's type
    except InvalidValue as error:
        return error
