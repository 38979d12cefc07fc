"""Kestra's output protocol: a stdout line `::{json}::` carries outputs, metrics and logs.

`{"outputs": {...}}` merges into the task's vars (later lines win, shallow), `{"metrics": [{name,
type: counter|timer|gauge, value, tags}]}` and `{"logs": [{level, message}]}` (or one log object)
are appended. Anything that is not exactly `::` + a JSON object + `::` is an ordinary log line.
What the lines produce is bounded (`activities.bounds`): a line nesting too deep, too many vars or
metrics fail the task (the ApplicationError is raised by `feed`); logs past a budget are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from activities.bounds import MAX_METRICS, MAX_OUTPUT_VARS, PROTOCOL_LIMIT_CHARS, PROTOCOL_LOGS_LIMIT_CHARS, json_loads, too_large

METRIC_TYPES = frozenset({"counter", "timer", "gauge"})
LOG_LEVELS = frozenset({"TRACE", "DEBUG", "INFO", "WARN", "ERROR"})


PROTOCOL_WRAPPING = 2
"""Levels around an output value in a line (`{"outputs": {"name": value}}`), not counted in its depth."""


def parse_protocol_line(line: str) -> dict[str, Any] | None:
    """The JSON object of a protocol line, or None when the line is a normal log line. Raises
    OutputTooDeep or ResultTooLarge (ApplicationError) when the object passes a bound."""
    line = line.removesuffix("\n").removesuffix("\r")
    if len(line) < 6 or not (line.startswith("::{") and line.endswith("}::")):
        return None
    try:
        payload = json_loads(line[2:-2], "An output of a `::{json}::` line", wrapping=PROTOCOL_WRAPPING)
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
    """Log entries kept for the result, up to PROTOCOL_LOGS_LIMIT_CHARS of messages (see `result_logs`)."""
    logs_left_out: int = 0
    line_logs: list[dict[str, Any]] = field(default_factory=list)
    """Every log entry of the last line fed (kept in `logs` or not), for the task log."""
    ignored: list[str] = field(default_factory=list)
    """Malformed parts of the last line fed (an otherwise valid protocol line), so the task can warn."""
    limit_chars: int = PROTOCOL_LIMIT_CHARS
    """Most characters of protocol lines one task run may write, all lines together."""
    _log_chars: int = field(default=0, compare=False, repr=False)
    _line_chars: int = field(default=0, compare=False, repr=False)

    def feed(self, line: str) -> bool:
        """Take a line of stdout; True if it was a protocol line (and so not a log line). Raises
        an ApplicationError (OutputTooDeep, ResultTooLarge) when the line passes a bound."""
        payload = parse_protocol_line(line)
        if payload is None:
            return False
        self._line_chars += len(line)
        if self._line_chars > self.limit_chars:
            raise too_large("The task's `::{json}::` output lines", f"more than {self.limit_chars:,} characters together")
        self.line_logs, self.ignored = [], []
        self._outputs(payload.get("outputs"))
        self._metrics(payload.get("metrics"))
        self._logs(payload.get("logs"))
        return True

    def result_logs(self) -> list[dict[str, Any]]:
        """The kept log entries, and a last one saying how many were left out, if any."""
        if not self.logs_left_out:
            return self.logs
        note = (f"… {self.logs_left_out} protocol log entries left out of the result (it keeps the first "
                f"{PROTOCOL_LOGS_LIMIT_CHARS // 1024} KiB of them; the task log keeps its head and tail)")
        return [*self.logs, {"level": "WARN", "message": note}]

    def _outputs(self, raw: Any) -> None:
        if isinstance(raw, dict):
            self.vars.update(raw)
            if len(self.vars) > MAX_OUTPUT_VARS:
                raise too_large("The task's outputs (`vars`)", f"more than {MAX_OUTPUT_VARS:,} names",
                                "group values under fewer names, or write them to a file listed in `outputFiles`")
        elif raw is not None:
            self.ignored.append(f"outputs must be an object, got {type(raw).__name__}")

    def _metrics(self, raw: Any) -> None:
        for item in _as_list(raw):
            metric = _metric(item)
            if metric is None:
                self.ignored.append(f"invalid metric {item!r:.200}")
                continue
            self.metrics.append(metric)
            if len(self.metrics) > MAX_METRICS:
                raise too_large("The task's metrics", f"more than {MAX_METRICS:,}",
                                "report fewer metrics (one counter per name and tags, counting up)")

    def _logs(self, raw: Any) -> None:
        for item in _as_list(raw):
            entry = _log(item)
            if entry is None:
                self.ignored.append(f"invalid log {item!r:.200}")
                continue
            self.line_logs.append(entry)
            self._log_chars += len(entry["message"])
            if self._log_chars <= PROTOCOL_LOGS_LIMIT_CHARS:
                self.logs.append(entry)
            else:
                self.logs_left_out += 1


def _as_list(raw: Any) -> list[Any]:
    """Kestra accepts one object or a list of them."""
    if raw is None:
        return []
    return raw if isinstance(raw, list) else [raw]
