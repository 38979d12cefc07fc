"""Stored values: an output too big for Temporal's history travels as a small reference object,
`{"$tflowRef": "<run>/<task run>/outputs/<file>", "size": n, "kind": "json"|"file"}`, whose value
lives in the run's storage (`activities.storage`), readable only on workers.

Pure helpers shared by the workflow (which never reads storage) and the activities (which do).
"""

from __future__ import annotations

from typing import Any

REF_KEY = "$tflowRef"
"""The key that makes a mapping a reference to a stored value."""
REF_MARK = f'"{REF_KEY}"'
"""How a reference shows in JSON text (a cheap test for "this printed container holds one")."""
NOT_SERIALIZED = ("now", "currentEachOutput", "flows")
"""Context names a worker-side render rebuilds instead of receiving (callables; `flows` is `outputs`)."""


def is_reference(value: Any) -> bool:
    return type(value) is dict and REF_KEY in value


def contains_reference(value: Any) -> bool:
    """True if a reference is anywhere inside `value` (outputs are small, so the walk is cheap)."""
    if type(value) is dict:
        return REF_KEY in value or any(contains_reference(item) for item in value.values())
    if type(value) is list:
        return any(contains_reference(item) for item in value)
    return False


def describe(reference: dict[str, Any]) -> str:
    """`<path> (<size> bytes)`, for messages."""
    size = reference.get("size")
    return f"{reference.get(REF_KEY)}" + (f" ({size} bytes)" if isinstance(size, int) else "")


def context_for_worker(context: dict[str, Any], now: str) -> dict[str, Any]:
    """A template context as JSON-ready data for a worker-side render (`now` as its text)."""
    shipped = {name: value for name, value in context.items() if name not in NOT_SERIALIZED}
    shipped["now"] = now
    return shipped
