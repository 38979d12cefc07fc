"""Cron expressions of Schedule triggers, checked before anything is deployed (SPEC §5).

Kestra reads Unix cron (5 fields, or 6 with seconds first when `withSeconds: true`) and the
`@hourly`-style nicknames; Temporal Schedules read 5–7 fields with a year and treat `#` as the start
of a comment. `temporal_cron` checks an expression field by field and returns the equivalent
Temporal cron string, so what would be silently misread by Temporal is a problem here instead.
"""

from __future__ import annotations

from dataclasses import dataclass

NICKNAMES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""Kestra's shorthands, as the five fields they stand for."""

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    """Names standing for low, low + 1, …"""


_SECOND = _Field("second", 0, 59)
_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES),
    _Field("day of week", 0, 7, DAY_NAMES),
)

_UNSUPPORTED = {
    "L": "`L` (last day) is not supported by Temporal schedules",
    "W": "`W` (nearest weekday) is not supported by Temporal schedules",
    "#": "`#` (nth weekday of the month) is not supported by Temporal schedules",
    "?": "`?` is not Unix cron: use `*`",
}


class CronError(ValueError):
    """An expression Temporal would refuse or read differently; the message says which field."""


def temporal_cron(expression: str, with_seconds: bool = False) -> str:
    """The Temporal cron string for a Kestra cron expression; raises `CronError`."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in NICKNAMES:
            known = ", ".join(NICKNAMES)
            raise CronError(f"unknown cron shorthand `{text}` (expected one of {known})")
        if with_seconds:
            return "0 " + NICKNAMES[text.lower()] + " *"
        return NICKNAMES[text.lower()]
    fields = _FIELDS if not with_seconds else (_SECOND, *_FIELDS)
    parts = text.split(" ") if text else []
    if len(parts) != len(fields):
        layout = " ".join(field.name.replace(" ", "-") for field in fields)
        extra = "" if with_seconds else " (or 6 with seconds first when `withSeconds: true`)"
        raise CronError(f"a cron expression has {len(fields)} fields{extra}: {layout}; got {len(parts)} in `{text}`")
    for field, part in zip(fields, parts):
        _check_field(field, part)
    day_of_month, day_of_week = parts[-3], parts[-1]
    if day_of_month != "*" and day_of_week != "*":
        raise CronError(
            "a cron expression that restricts both the day of month and the day of week is not supported "
            "(cron runs on either, Temporal schedules only on both): restrict one and leave the other `*`"
        )
    # Temporal reads 7 fields as second … year, and 6 as minute … year: add the year.
    return text + " *" if with_seconds else text


def _check_field(field: _Field, part: str) -> None:
    for item in part.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            raise CronError(f"{field.name} `{part}`: the step after `/` must be a whole number ≥ 1, got `{step}`")
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2:
            raise CronError(f"{field.name} `{part}`: expected a value, a range `a-b`, `*`, or a step `…/n`")
        values = [_value(field, part, bound) for bound in bounds]
        if len(values) == 2 and values[0] > values[1]:
            raise CronError(f"{field.name} `{part}`: the range `{base}` goes backwards")


def _value(field: _Field, part: str, text: str) -> int:
    if text.upper() in field.names:
        return field.low + field.names.index(text.upper())
    names = f" or a name ({field.names[0]}–{field.names[-1]})" if field.names else ""
    if not text.isdigit():
        for mark, why in _UNSUPPORTED.items():
            if mark in text.upper():
                raise CronError(f"{field.name} `{part}`: {why}")
        raise CronError(f"{field.name} `{part}`: expected a number {field.low}–{field.high}{names}, got `{text}`")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name} `{part}`: {value} is out of range {field.low}–{field.high}")
    return value
