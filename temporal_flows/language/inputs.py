"""Flow inputs (SPEC §5): the types, and resolving given values (coercion, then the declaration's
validators). Declarations are checked at load time by `input_declarations`.

Resolving is pure and deterministic (no I/O, no clock), because it runs in two places: on the
client before a run starts (`tflow run --input`, schedules) and inside the workflow for a subflow's
inputs. It is idempotent: resolved values are kept in JSON form (dates and durations as ISO-8601
text, JSON/YAML parsed into data), so resolving them again gives the same values.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from datetime import date, datetime, time, timezone
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

import yaml

from temporal_flows.expressions.references import is_reference
from temporal_flows.language.source import FlowYamlLoader, YamlLimitError, parse_json_text
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.problems import did_you_mean

INPUT_TYPES: tuple[str, ...] = (
    "STRING", "INT", "FLOAT", "BOOLEAN", "SELECT", "MULTISELECT", "ARRAY", "JSON", "YAML", "DATETIME",
    "DATE", "TIME", "DURATION", "URI", "EMAIL", "SECRET", "FILE",
)
"""Canonical input types, as a flow's `inputs[].type` names them."""

INPUT_TYPE_ALIASES: dict[str, str] = {"BOOL": "BOOLEAN", "ENUM": "SELECT"}
"""Other names Kestra accepts for the same types."""

ARRAY_ITEM_TYPES = tuple(name for name in INPUT_TYPES if name not in ("ARRAY", "SELECT", "MULTISELECT", "FILE"))
FILE_TYPE = "FILE"
"""A file the starter gives (`tflow run --input NAME=@path`): stored in the run's storage before
the run starts; its value is the stored file's signed reference (`client.input_files`)."""


class InputError(Exception):
    """Given inputs that do not fit the declaration: every problem at once, each naming the input,
    what was given and what was expected."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class InvalidValue(ValueError):
    """One value that does not fit; the message says what was expected."""


def canonical_type(name: Any) -> str | None:
    """`BOOL` → `BOOLEAN`; None for an unknown name."""
    if not isinstance(name, str):
        return None
    name = INPUT_TYPE_ALIASES.get(name, name)
    return name if name in INPUT_TYPES else None


# -- coercion: one function per type ---------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (date, time)):  # a YAML inputs file reads `2024-01-31` as a date
        return _as_json_form(value)
    raise InvalidValue("text")


def _string(value: Any, _: Mapping[str, Any]) -> str:
    return _text(value)


def _int(value: Any, _: Mapping[str, Any]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        with contextlib.suppress(ValueError):  # past Python's 4,300 digits
            return int(value.strip())
    raise InvalidValue("a whole number")


def _float(value: Any, _: Mapping[str, Any]) -> float:
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except (ValueError, OverflowError):  # OverflowError: an int past a float's range
        number = math.nan
    if not math.isfinite(number):
        raise InvalidValue("a number")
    return number


def _boolean(value: Any, _: Mapping[str, Any]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidValue("true or false")


def _choices(declaration: Mapping[str, Any]) -> list[str]:
    return [_text(choice) for choice in declaration.get("values") or []]


def _one_of(choices: list[str]) -> str:
    return "one of " + ", ".join(f"`{choice}`" for choice in choices)


def _select(value: Any, declaration: Mapping[str, Any]) -> str:
    choices = _choices(declaration)
    text = _text(value) if not isinstance(value, (list, dict)) else None
    if text is None or (choices and text not in choices and not declaration.get("allow_custom_value")):
        raise InvalidValue(_one_of(choices) if choices else "text")
    return text


def _items(value: Any) -> list[Any]:
    """A list as given: a list, JSON list text, or comma-separated text (`a,b`)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise InvalidValue("a JSON list") from None
            if isinstance(parsed, list):
                return parsed
        return [item.strip() for item in text.split(",")] if text else []
    raise InvalidValue("a list")


def _multiselect(value: Any, declaration: Mapping[str, Any]) -> list[str]:
    choices = _choices(declaration)
    expected = f"a list of {_one_of(choices)} (a JSON list or comma-separated)" if choices else "a list"
    try:
        items = [_text(item) for item in _items(value)]
    except InvalidValue:
        raise InvalidValue(expected) from None
    if choices and not declaration.get("allow_custom_value") and any(item not in choices for item in items):
        raise InvalidValue(expected)
    return items


def _array(value: Any, declaration: Mapping[str, Any]) -> list[Any]:
    item_type = canonical_type(declaration.get("item_type"))
    coerce_item = _COERCE[item_type] if item_type in ARRAY_ITEM_TYPES else _as_json_form
    try:
        return [coerce_item(item, {}) for item in _items(value)]
    except InvalidValue as error:
        of = f" of {error}" if item_type else ""
        raise InvalidValue(f"a list{of} (a JSON list or comma-separated)") from None


def _as_json_form(value: Any, _: Mapping[str, Any] | None = None) -> Any:
    """Data as JSON can carry it (a Temporal payload): dates as ISO text, keys as text."""
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {_text(key) if not isinstance(key, str) else key: _as_json_form(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json_form(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise InvalidValue("data")


def _parsed(value: Any, parse: Callable[[str], Any], expected: str) -> Any:
    """JSON/YAML: text is parsed, data is kept. Text that is itself a string stays as written, so
    resolving the result again gives the same value."""
    if not isinstance(value, str):
        return _as_json_form(value)
    try:
        parsed = parse(value)
    except YamlLimitError as error:  # past a reading bound (size, depth, values): say which
        raise InvalidValue(f"{expected} within the reading bounds ({error.problem})") from None
    except (ValueError, yaml.YAMLError):
        raise InvalidValue(expected) from None
    return value if isinstance(parsed, str) else _as_json_form(parsed)


def _json(value: Any, _: Mapping[str, Any]) -> Any:
    return _parsed(value, _bounded_json, "JSON text")


def _bounded_json(text: str) -> Any:
    """JSON text held to the YAML reading bounds (`parse_json_text`); a bound passed is a
    `YamlLimitError`, as it is for YAML text, and no nesting reaches Python's recursion limit."""
    try:
        return parse_json_text(text)
    except json.JSONDecodeError:
        raise
    except ValueError as error:
        raise YamlLimitError(str(error)) from None


def _yaml(value: Any, _: Mapping[str, Any]) -> Any:
    return _parsed(value, lambda text: yaml.load(text, Loader=FlowYamlLoader), "YAML text")


def _instant(moment: datetime) -> str:
    """A moment as UTC ISO-8601 text with `Z` (no zone given means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00
        raise InvalidValue("a date-time that stays within the years 1 to 9999 in UTC") from None
    return moment.isoformat().replace("+00:00", "Z")


def _parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        text = _text(value).strip()
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except (ValueError, InvalidValue):
        raise InvalidValue("an ISO-8601 date-time like 2024-01-31T10:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(_text(value).strip())
    except (ValueError, InvalidValue):
        raise InvalidValue("an ISO-8601 date like 2024-01-31") from None


def _parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(_text(value).strip())
    except (ValueError, InvalidValue):
        raise InvalidValue("an ISO-8601 time like 10:15:30") from None


def _parse_seconds(value: Any) -> float:
    try:
        seconds = parse_duration(value) if isinstance(value, (str, int, float)) else -1.0
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidValue("an ISO-8601 duration like PT5M (or 5m, 30s, 1h30m)")
    return seconds


def iso_duration(seconds: float) -> str:
    """Seconds as ISO-8601, the way Java's `Duration` prints them (`PT1H30M`, `PT0.5S`, `PT24H`)."""
    hours, rest = divmod(round(seconds, 6), 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{int(hours)}H" if hours else "") + (f"{int(minutes)}M" if minutes else "")
    if secs or text == "PT":
        text += format(round(secs, 6), "f").rstrip("0").rstrip(".") + "S"
    return text


def _datetime(value: Any, _: Mapping[str, Any]) -> str:
    return _instant(_parse_datetime(value))


def _date(value: Any, _: Mapping[str, Any]) -> str:
    return _parse_date(value).isoformat()


def _time(value: Any, _: Mapping[str, Any]) -> str:
    return _parse_time(value).isoformat()


def _duration(value: Any, _: Mapping[str, Any]) -> str:
    return iso_duration(_parse_seconds(value))


def _uri(value: Any, _: Mapping[str, Any]) -> str:
    text = value if isinstance(value, str) else ""
    parsed = urlparse(text.strip())
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parsed.scheme or "") or not (parsed.netloc or parsed.path):
        raise InvalidValue("a URI with a scheme, like https://example.com/data.csv")
    return text


def _email(value: Any, _: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s.]+", value.strip()):
        raise InvalidValue("an email address like name@example.com")
    return value.strip()


def _file(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    """A stored file's reference, kept as it is: only a worker can tell a signed one (it reads it)
    from data shaped like one (it stays plain data there)."""
    if is_reference(value) and value.get("kind") == "file":
        return value
    raise InvalidValue("a file, given as @path (tflow run --input NAME=@path)")


_COERCE: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "STRING": _string, "SECRET": _string, "INT": _int, "FLOAT": _float, "BOOLEAN": _boolean, "SELECT": _select,
    "MULTISELECT": _multiselect, "ARRAY": _array, "JSON": _json, "YAML": _yaml, "DATETIME": _datetime, "DATE": _date,
    "TIME": _time, "DURATION": _duration, "URI": _uri, "EMAIL": _email, "FILE": _file,
}


def coerce(type_name: str, value: Any, declaration: Mapping[str, Any] | None = None) -> Any:
    """`value` in the JSON form of type `type_name` (checked against the declaration's validators);
    raise ValueError saying what was expected. Flow outputs use it too, without a declaration."""
    declaration = declaration or {}
    canonical = canonical_type(type_name) or "STRING"
    coerced = _COERCE[canonical](value, declaration)
    violation = _violation(canonical, coerced, declaration)
    if violation:
        raise InvalidValue(violation)
    return coerced


# -- validators ------------------------------------------------------------------------------------

def _violation(type_name: str, value: Any, declaration: Mapping[str, Any]) -> str | None:
    """What a coerced value breaks among the declaration's validators, or None."""
    if type_name in ("STRING", "SECRET"):
        pattern, shortest, longest = (declaration.get(key) for key in ("validator", "min_length", "max_length"))
        if pattern is not None and not re.fullmatch(pattern, value):
            return f"text matching the validator `{pattern}`"
        if shortest is not None and len(value) < shortest:
            return f"text of at least {shortest} characters"
        if longest is not None and len(value) > longest:
            return f"text of at most {longest} characters"
        return None
    bounds = _BOUNDS.get(type_name)
    if bounds is None:
        return None
    low_key, high_key, parse, strict = bounds
    low, high = declaration.get(low_key), declaration.get(high_key)
    if low is None and high is None:
        return None
    measured = parse(value)
    too_low = low is not None and (measured <= parse(low) if strict else measured < parse(low))
    too_high = high is not None and (measured >= parse(high) if strict else measured > parse(high))
    if not (too_low or too_high):
        return None
    word_low, word_high = ("after", "before") if strict else ("at least", "at most")
    limits = [f"{word_low} {low}" if low is not None else "", f"{word_high} {high}" if high is not None else ""]
    return "a value " + " and ".join(limit for limit in limits if limit)


def _number(value: Any) -> int | float:
    """A number compared as it is: Python compares ints and floats exactly, with no float overflow."""
    return value if isinstance(value, (int, float)) else float(value)


_BOUNDS: dict[str, tuple[str, str, Callable[[Any], Any], bool]] = {
    "INT": ("min", "max", _number, False),
    "FLOAT": ("min", "max", _number, False),
    "DURATION": ("min", "max", _parse_seconds, False),
    "DATETIME": ("after", "before", _parse_datetime, True),
    "DATE": ("after", "before", _parse_date, True),
    "TIME": ("after", "before", _parse_time, True),
}
"""Types with bounds: (low key, high key, how to compare, strict). Kestra's dates must be strictly
after/before; numbers and durations are within min..max inclusive."""


def shown_value(value: Any, type_name: str | None = None) -> str:
    """A given value as a message shows it: hidden for a SECRET, cut past 80 characters."""
    if type_name == "SECRET":
        return "a hidden value"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- resolving -------------------------------------------------------------------------------------

def resolve_inputs(declared: list[dict[str, Any]], given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's inputs: each declared input from `given` (text from the CLI or typed values)
    coerced to its type and checked, else its `defaults`, else None when not required. Raise
    `InputError` with every problem (missing, invalid, undeclared). Pure, deterministic, idempotent."""
    resolved: dict[str, Any] = {}
    messages: list[str] = []
    for declaration in declared:
        input_id, type_name = declaration["id"], canonical_type(declaration.get("type")) or "STRING"
        value = given.get(input_id)
        if value is None:
            value = declaration.get("defaults")
        if value is None:
            if declaration.get("required", True):
                messages.append(f"input `{input_id}` ({type_name}) is required and was not given")
            resolved[input_id] = None
            continue
        try:
            resolved[input_id] = coerce(type_name, value, declaration)
        except ValueError as error:
            messages.append(f"input `{input_id}` ({type_name}): got {shown_value(value, type_name)}, expected {error}")
    known = [declaration["id"] for declaration in declared]
    for name in given:
        if name not in known:
            where = f"the flow declares {', '.join(f'`{k}`' for k in known)}" if known else "the flow declares no inputs"
            messages.append(f"unknown input `{name}`{did_you_mean(str(name), known)}: {where}")
    if messages:
        raise InputError(messages)
    return resolved
