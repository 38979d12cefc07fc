"""Kestra's output protocol: a stdout line `::{json}::` carries outputs, metrics and logs.

`{"outputs": {...}}` merges into the task's vars (later lines win, shallow), `{"metrics": [{name,
type: counter|timer|gauge, value, tags}]}` and `{"logs": [{level, message}]}` (or one log object)
are appended. Anything that is not exactly `::` + a JSON object + `::` is an ordinary log line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

METRIC_TYPES = frozenset({"counter", "timer", "gauge"})
LOG_LEVELS = frozenset({"TRACE", "DEBUG", "INFO", "WARN", "ERROR"})


def parse_protocol_line(line: str) -> dict[str, Any] | None:
    """The JSON object of a protocol line, or None when the line is a normal log line."""
    line = line.removesuffix("\n").removesuffix("\r")
    if len(line) < 6 or not (line.startswith("::{") and line.endswith("}::")):
        return None
    try:
        payload = json.loads(line[2:-2])
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _metric(raw: Any) -> dict[str, Any] | None:
    """A normalised metric, or None if it lacks a name, a known type or a numeric value."""
    if not isinstance(raw, dict):
        return None
    name, kind, value = raw.get("name"), raw.get("type"), raw.get("value")
    tags = raw.get("tags") or {}
    if not isinstance(name, str) or not name or kind not in METRIC_TYPES:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not isinstance(tags, dict):
        return None
    return {"name": name, "type": kind, "value": value, "tags": {str(k): str(v) for k, v in tags.items()}}


def _log(raw: Any) -> dict[str, Any] | None:
    """A normalised log entry; Kestra's levels, `WARNING` accepted as `WARN`, INFO by default."""
    if not isinstance(raw, dict) or "message" not in raw:
        return None
    level = str(raw.get("level") or "INFO").upper()
    level = "WARN" if level == "WARNING" else level
    if level not in LOG_LEVELS:
        level = "INFO"
    message = raw["message"]
    return {"level": level, "message": message if isinstance(message, str) else json.dumps(message)}


@dataclass
class ProtocolState:
    """What protocol lines of one task run have produced so far."""

    vars: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    """Malformed parts of otherwise valid protocol lines, so the task can warn about them."""

    def feed(self, line: str) -> bool:
        """Take a line of stdout; True if it was a protocol line (and so not a log line)."""
        payload = parse_protocol_line(line)
        if payload is None:
            return False
        self._outputs(payload.get("outputs"))
        self._metrics(payload.get("metrics"))
        self._logs(payload.get("logs"))
        return True

    def _outputs(self, raw: Any) -> None:
        if isinstance(raw, dict):
            self.vars.update(raw)
        elif raw is not None:
            self.ignored.append(f"outputs must be an object, got {type(raw).__name__}")

    def _metrics(self, raw: Any) -> None:
        for item in _as_list(raw):
            metric = _metric(item)
            if metric is None:
                self.ignored.append(f"invalid metric {item!r:.200}")
            else:
                self.metrics.append(metric)

    def _logs(self, raw: Any) -> None:
        for item in _as_list(raw):
            entry = _log(item)
            if entry is None:
                self.ignored.append(f"invalid log {item!r:.200}")
            else:
                self.logs.append(entry)


def _as_list(raw: Any) -> list[Any]:
    """Kestra accepts one object or a list of them."""
    if raw is None:
        return []
    return raw if isinstance(raw, list) else [raw]
