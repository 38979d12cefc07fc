"""Durations as flows write them: ISO 8601 (`PT5M`, `P1DT2H`) or short forms (`5m`, `30s`, `1h30m`)."""

from __future__ import annotations

import re

_ISO = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_SHORT_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ISO_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}

EXPECTED = "an ISO 8601 duration like `PT5M` or a short form like `5m`, `30s`, `1h30m`"


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; a bare number is seconds. Raise ValueError naming the accepted forms."""
    if isinstance(text, bool):
        raise ValueError(f"expected {EXPECTED}, got {text!r}")
    if isinstance(text, (int, float)):
        return float(text)
    value = text.strip()
    iso = _ISO.match(value)
    if iso and value.upper() not in ("P", "PT") and any(iso.groupdict().values()):
        return sum(float(amount) * _ISO_SECONDS[unit] for unit, amount in iso.groupdict().items() if amount)
    compact = value.replace(" ", "").lower()
    if compact and _SHORT_PART.sub("", compact) == "":
        return sum(float(amount) * _SECONDS[unit] for amount, unit in _SHORT_PART.findall(compact))
    raise ValueError(f"expected {EXPECTED}, got {text!r}")
