"""Kestra's date filters, `| date(format, timeZone, existingFormat)` and `| dateAdd(amount, unit, …)`,
with Java's DateTimeFormatter patterns (`yyyy-MM-dd'T'HH:mm`) and Kestra's named formats.

Pure and deterministic: names of months and days are English whatever the worker's locale, and the
default time zone is UTC, not the worker's (Kestra uses its server's).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2.runtime import Undefined

from temporal_flows.expressions.library import TemplateFunctionError

NAMED_FORMATS = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    "iso_local_date": "yyyy-MM-dd",
}
"""Kestra's names for patterns; the ISO formatters below print a fraction only when there is one."""

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
"""English names, whatever the worker's locale (`calendar.month_name` follows the locale)."""

_FIELD = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|[^A-Za-z']+")
_UNITS = {
    "MICROS": timedelta(microseconds=1), "MILLIS": timedelta(milliseconds=1),
    "SECONDS": timedelta(seconds=1), "MINUTES": timedelta(minutes=1), "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12), "DAYS": timedelta(days=1), "WEEKS": timedelta(weeks=1),
}
_MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200}


class DateFormatError(TemplateFunctionError):
    """A date, pattern, unit or time zone the filters cannot read."""


def date_filter(value: Any, format: str = "iso", timeZone: str | None = None, existingFormat: str | None = None, locale: str | None = None) -> str:  # noqa: A002 - Kestra's argument names
    """Kestra's `| date(...)`: the value (ISO text, a datetime, or epoch seconds) in `format`."""
    _english(locale)
    zone = _zone(timeZone)
    return format_date(to_datetime(value, zone, existingFormat), format, zone)


def date_add_filter(value: Any, amount: int, unit: str, format: str = "iso", timeZone: str | None = None, existingFormat: str | None = None, locale: str | None = None) -> str:  # noqa: A002
    """Kestra's `| dateAdd(amount, unit, ...)`: `unit` is a Java ChronoUnit name (`DAYS`, `MONTHS`…)."""
    _english(locale)
    zone = _zone(timeZone)
    moment = to_datetime(value, zone, existingFormat)
    unit = str(unit).upper()
    if unit in _MONTH_UNITS:
        moment = _add_months(moment, int(amount) * _MONTH_UNITS[unit])
    elif unit in _UNITS:
        moment = moment + _UNITS[unit] * int(amount)
    else:
        raise DateFormatError(f"dateAdd: unknown unit {unit!r} (one of {', '.join([*_UNITS, *_MONTH_UNITS])})")
    return format_date(moment, format, zone)


def timestamp_filter(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> int:
    """Kestra's `| timestamp`: epoch seconds."""
    return int(to_datetime(value, _zone(timeZone), existingFormat).timestamp())


def to_datetime(value: Any, zone: tzinfo, existing_format: str | None = None) -> datetime:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=zone)
    elif isinstance(value, date):
        moment = datetime.combine(value, time(12), zone)  # as Kestra: a date is its noon
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str) and existing_format is None:
        moment = _parse_iso(value, zone)
    elif isinstance(value, str):
        moment = _parse_with(value, existing_format, zone)
    else:
        raise DateFormatError(f"date: cannot read {value!r} ({type(value).__name__}) as a date")
    return moment.astimezone(zone)


def format_date(moment: datetime, pattern: str, zone: tzinfo) -> str:
    """`moment` in `zone`, written with a Kestra named format or a Java DateTimeFormatter pattern."""
    moment = moment.astimezone(zone)
    if pattern in ("iso_instant", "iso_local_date_time", "iso_date_time", "iso_local_time"):
        return _iso(moment, pattern, zone)
    pattern = NAMED_FORMATS.get(pattern, pattern)
    return "".join(_field(moment, match.group(0)) for match in _FIELD.finditer(pattern))


def _iso(moment: datetime, name: str, zone: tzinfo) -> str:
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    clock = moment.strftime("%H:%M:%S") + fraction
    if name == "iso_local_time":
        return clock
    if name == "iso_instant":  # Java prints 0, 3 or 6 digits here
        digits = 0 if not moment.microsecond else 3 if moment.microsecond % 1000 == 0 else 6
        instant = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + instant + "Z"
    local = moment.strftime("%Y-%m-%dT") + clock
    if name == "iso_local_date_time":
        return local
    region = f"[{zone.key}]" if isinstance(zone, ZoneInfo) and zone.key != "UTC" else ""
    return local + _offset(moment, "XXX") + region


def _field(moment: datetime, text: str) -> str:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'") if len(text) > 2 else "'"
    letter, width = text[0], len(text)
    if not letter.isalpha():
        return text
    if letter in "yu":
        return f"{moment.year % 100:02d}" if width == 2 else f"{moment.year:0{width}d}"
    if letter in "ML":
        if width >= 3:
            return MONTHS[moment.month - 1][: 3 if width == 3 else None]
        return f"{moment.month:0{width}d}"
    if letter in "E":
        return DAYS[moment.weekday()][: 3 if width <= 3 else None]
    if letter == "S":
        return f"{moment.microsecond:06d}{'0' * 3}"[:width]
    if letter == "a":
        return "AM" if moment.hour < 12 else "PM"
    if letter in "XxZ":
        return _offset(moment, text)
    if letter == "z":
        return moment.tzname() or ""
    if letter == "V":
        return getattr(moment.tzinfo, "key", None) or _offset(moment, "XXX")
    numbers = {
        "d": moment.day, "D": moment.timetuple().tm_yday, "H": moment.hour, "h": (moment.hour % 12) or 12,
        "K": moment.hour % 12, "k": moment.hour or 24, "m": moment.minute, "s": moment.second,
    }
    if letter in numbers:
        return f"{numbers[letter]:0{width}d}"
    raise DateFormatError(f"date: pattern letter {letter!r} is not supported")


def _offset(moment: datetime, text: str) -> str:
    seconds = int(moment.utcoffset().total_seconds()) if moment.utcoffset() is not None else 0
    if seconds == 0 and text[0] == "X":
        return "Z"
    sign = "+" if seconds >= 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    if text in ("X", "x"):
        return f"{sign}{hours:02d}" + (f"{minutes:02d}" if minutes else "")
    if text in ("XXX", "xxx", "ZZZZZ"):
        return f"{sign}{hours:02d}:{minutes:02d}"
    return f"{sign}{hours:02d}{minutes:02d}"


def _english(locale: str | None) -> None:
    if locale is not None and not str(locale).lower().startswith("en"):
        raise DateFormatError(f"date: locale {locale!r} is not available (names are English)")


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DateFormatError(f"date: unknown time zone {name!r}") from None


def _parse_iso(text: str, zone: tzinfo) -> datetime:
    cleaned = re.sub(r"\[[^\]]+\]$", "", text.strip())
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise DateFormatError(f"date: {text!r} is not an ISO-8601 date (give `existingFormat` to read another form)") from None
    if len(cleaned) == 10:  # a date alone
        return datetime.combine(moment.date(), time(12), zone)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _parse_with(text: str, pattern: str, zone: tzinfo) -> datetime:
    """`text` read with a Java pattern, through the strptime directives the same letters mean."""
    directives = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "M": "%m", "dd": "%d", "d": "%d", "HH": "%H", "H": "%H",
                  "mm": "%M", "m": "%M", "ss": "%S", "s": "%S", "XXX": "%z", "XX": "%z", "Z": "%z"}
    parts = []
    for match in _FIELD.finditer(NAMED_FORMATS.get(pattern, pattern)):
        field = match.group(0)
        if field.startswith("'"):
            parts.append((field[1:-1] or "'").replace("%", "%%"))
        elif field[0].isalpha():
            if field.startswith("S"):
                parts.append("%f")
            elif field in directives:
                parts.append(directives[field])
            else:
                raise DateFormatError(f"date: cannot read with pattern letter {field!r} of {pattern!r}")
        else:
            parts.append(field.replace("%", "%%"))
    try:
        moment = datetime.strptime(text, "".join(parts))
    except ValueError as error:
        raise DateFormatError(f"date: {text!r} does not match {pattern!r} ({error})") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _add_months(moment: datetime, months: int) -> datetime:
    """As Java's plusMonths: the same day, or the month's last day when it is shorter."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


FILTERS = {"date": date_filter, "dateAdd": date_add_filter, "timestamp": timestamp_filter}
