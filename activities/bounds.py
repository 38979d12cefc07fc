"""Bounds on what a task run hands back, checked on the worker before a result leaves the activity.

Outputs come from untrusted programs and servers (`::{json}::` lines, HTTP bodies, extractors). A
value nested hundreds of levels deep makes code that walks it recursively (the SDK's converter, the
workflow) raise RecursionError; a result near Temporal's payload limit cannot be recorded at all, so
the task would be re-dispatched as if its worker had died. Past a bound the task fails once,
non-retryably, with a named error type (`activities.api`) and a message saying what to do instead.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.api import OUTPUT_TOO_DEEP_ERROR, RESULT_TOO_LARGE_ERROR
from temporal_flows.metadata import PAYLOAD_LIMIT_BYTES

MAX_DEPTH = 64
"""Deepest nesting of lists and objects in one output value (an output var, an HTTP body, an
extracted value); a scalar is 0 deep, `[]` 1."""
MAX_ITEMS = 100_000
"""Most entries (object keys plus list items, at every level together) in one output value or one
`::{json}::` line; a bigger collection belongs in a file (`outputFiles`)."""
MAX_OUTPUT_VARS = 1_000
"""Most names in a task's `vars` (`outputs` merged from `::{json}::` lines)."""
MAX_METRICS = 1_000
"""Most metrics one task run reports; they are kept in the run's ledger."""
PROTOCOL_LIMIT_CHARS = 64 * 1024 * 1024
"""Most characters of `::{json}::` lines one task run may write, all lines together (64 Mi): the
worker holds what they carry until the task ends (one line is at most 8 MiB, `activities.processes`)."""
PROTOCOL_LOGS_LIMIT_CHARS = 64 * 1024
"""Characters of `::{json}::` log messages kept in the result's `logs`; later ones are left out with
a marker entry (the task log, `tflow status --logs`, keeps its own head and tail of them)."""
RESULT_LIMIT_BYTES = PAYLOAD_LIMIT_BYTES // 2
"""Largest activity result (or failure details) as JSON: half of Temporal's payload limit, leaving room
for the envelope. Big values are stored by reference before this is measured (`activities.storage`)."""
_CONTAINERS = (dict, list, tuple)
ADVICE = "write the data to a file and list it in `outputFiles`, or reduce the output"


def too_deep(what: str, max_depth: int = MAX_DEPTH) -> ApplicationError:
    return ApplicationError(f"{what} nests deeper than {max_depth} levels of lists and objects; {ADVICE}",
                            type=OUTPUT_TOO_DEEP_ERROR, non_retryable=True)


def too_large(what: str, detail: str, advice: str = ADVICE) -> ApplicationError:
    return ApplicationError(f"{what} is too large ({detail}); {advice}", type=RESULT_TOO_LARGE_ERROR, non_retryable=True)


def check_value(value: Any, what: str, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS, wrapping: int = 0) -> None:
    """Raise OutputTooDeep or ResultTooLarge (ApplicationError) when `value` passes a bound;
    `wrapping` levels of envelope around the output values are not counted in their depth.

    Iterative (no recursion, whatever the depth) and stops at the first bound passed."""
    if not isinstance(value, _CONTAINERS):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    items = 0
    while stack:
        node, depth = stack.pop()
        if depth > max_depth + wrapping:
            raise too_deep(what, max_depth)
        items += len(node)
        if items > max_items:
            raise too_large(what, f"more than {max_items:,} keys and items")
        children = node.values() if isinstance(node, dict) else node
        stack.extend([(child, depth + 1) for child in children if isinstance(child, _CONTAINERS)])


def json_loads(text: str | bytes, what: str, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS,
               wrapping: int = 0) -> Any:
    """`json.loads` whose result is within the bounds (see check_value): ValueError for text that is
    not JSON, else OutputTooDeep or ResultTooLarge (ApplicationError) past a bound. The C parser
    itself raises RecursionError near Python's recursion limit; that is OutputTooDeep too."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep(what, max_depth) from None
    check_value(value, what, max_depth, max_items, wrapping)
    return value


def result_size(payload: Any) -> int:
    """Bytes of `payload` as the SDK's JSON converter writes it (ASCII escapes, compact), near enough."""
    return len(json.dumps(payload, separators=(",", ":"), default=str))


def check_result_size(payload: Any, what: str, limit: int = RESULT_LIMIT_BYTES) -> None:
    """Raise ResultTooLarge when `payload` (a result or a failure's details, as JSON) exceeds `limit`."""
    try:
        size = result_size(payload)
    except RecursionError:  # only a value that skipped check_value can be this deep
        raise too_deep(what) from None
    if size > limit:
        raise too_large(what, f"{size:,} bytes as JSON, the limit is {limit:,}")
