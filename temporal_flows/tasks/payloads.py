"""Bounds on what the workflow itself hands to Temporal: outputs computed in the workflow, requests
of activities and child runs, the run's summary. A payload over Temporal's limit (2 MiB) makes the
server terminate the run, so past a bound here the task run (or the run) fails with a named error
instead. Values are measured as the SDK's JSON converter writes them (compact, ASCII escapes).
"""

from __future__ import annotations

import json
from typing import Any

from activities.api import OUTPUT_TOO_DEEP_ERROR, RESULT_TOO_LARGE_ERROR
from temporal_flows.metadata import PAYLOAD_LIMIT_BYTES

OUTPUTS_LIMIT_BYTES = PAYLOAD_LIMIT_BYTES // 2
"""Largest outputs of one task run computed in the workflow (a pure task's, a flowable's, a
subflow's, a resume's inputs): the bound a runnable's whole result has on the worker, so a task run
always fits in one recorded ledger page beside the run's summary."""
SUMMARY_OUTPUTS_LIMIT_BYTES = 256 * 1024
"""Largest flow `outputs` (and a subflow's outputs rendered for its caller): they travel in the
run's result, its first recorded ledger page and its caller's task run."""
REQUEST_LIMIT_BYTES = PAYLOAD_LIMIT_BYTES - 64 * 1024
"""Largest request the workflow sends (an activity's input, a child run's input): the payload
limit less room for the envelope and an encrypting codec."""
ERROR_MESSAGE_LIMIT_CHARS = 8 * 1024
"""Longest error message kept in the ledger and the summary; the rest is cut with a note."""
MAX_DEPTH = 64
"""Deepest nesting of lists and objects in a value computed in the workflow (as on the worker)."""
REQUEST_TOO_LARGE_ERROR = "RequestTooLarge"
"""Error type of a task whose request (rendered properties, a subflow's inputs) passes its bound."""

BIG_VALUE_ADVICE = ("compute big values in a runnable task (commands, script, http: their big outputs are "
                    "stored by reference) or write them to a file (`outputFiles`)")


class PayloadTooLarge(Exception):
    """A value over one of these bounds; `error` is what the task run (or the run) fails with."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    @property
    def error(self) -> dict[str, Any]:
        return {"type": self.error_type, "message": self.message}


def too_deep(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """True when lists and objects in `value` nest deeper than `max_depth` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if depth >= max_depth:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return False


def measure(value: Any, what: str, max_depth: int = MAX_DEPTH) -> int:
    """Bytes of `value` as JSON; `PayloadTooLarge` (OutputTooDeep) when it nests past `max_depth`."""
    if too_deep(value, max_depth):
        raise PayloadTooLarge(OUTPUT_TOO_DEEP_ERROR,
                              f"{what}: nested deeper than {max_depth} levels of lists and objects; {BIG_VALUE_ADVICE}")
    return len(json.dumps(value, separators=(",", ":"), default=str))


def check_size(value: Any, what: str, limit: int, advice: str = BIG_VALUE_ADVICE,
               error_type: str = RESULT_TOO_LARGE_ERROR) -> int:
    """The size of `value` as JSON; `PayloadTooLarge` when it is over `limit` bytes or too deep."""
    size = measure(value, what)
    if size > limit:
        raise PayloadTooLarge(error_type, f"{what}: too large ({size:,} bytes as JSON, the limit is {limit:,}); {advice}")
    return size


def shorten(message: str, limit: int = ERROR_MESSAGE_LIMIT_CHARS) -> str:
    """`message` cut to its first `limit` characters, saying how many were left out."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... [{len(message) - limit:,} more characters left out]"


def bounded_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """An error record whose message is `shorten`ed (errors are kept in the ledger and the summary)."""
    if error is None:
        return None
    message = error.get("message")
    if isinstance(message, str) and len(message) > ERROR_MESSAGE_LIMIT_CHARS:
        return {**error, "message": shorten(message)}
    return error
