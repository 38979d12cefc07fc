"""Rendering on a worker: templates that read stored values (references), which the workflow cannot
read, render here with the workflow's own environment (`temporal_flows.expressions.templates`), references
read from the run's storage. A result too big for the history is stored again and returned as a
reference; a reference that cannot be read fails the task naming its file. Data merely shaped like
a reference (not signed for this run, see `activities.storage_keys`) is rendered as the plain data it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.api import RENDER_ACTIVITY, RenderRequest
from activities.storage import StoredValueError, TaskStorage, root_run_of, read_value, stored
from temporal_flows.expressions.templates import ExpressionError, reading_environment, render_string


class _FixedNow:
    """`now()` as the workflow saw it when it asked for the render (printed bare, the same text)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self) -> str:
        return self.text

    __str__ = __repr__ = __call__


def render_templates(request: RenderRequest) -> dict[str, Any]:
    """`{template: rendered text, or a reference when it is too big}`; raises ExpressionError."""
    cache: dict[str, Any] = {}
    root_run_id = root_run_of(request)

    def read(reference: dict[str, Any]) -> Any:
        if not stored(reference, root_run_id):
            return reference  # forged, or another run's: never read
        path = str(reference.get("$tflowRef"))
        if path not in cache:
            cache[path] = read_value(reference, root_run_id)
        return cache[path]

    env = reading_environment(request.pebble, read)
    context = dict(request.context)
    context["now"] = _FixedNow(str(context.get("now", "")))
    if request.pebble:
        context["flows"] = context.get("outputs", {})
    rendered = {}
    for template in request.templates:
        rendered[template] = render_string(template, context, request.pebble, env=env)
    return TaskStorage.of(request).shrink(rendered, prefix="rendered-")


@activity.defn(name=RENDER_ACTIVITY)
async def render_stored(request: RenderRequest) -> dict[str, Any]:
    """Render in a thread (reading and rendering megabytes must not stall heartbeats of others)."""
    try:
        return await asyncio.to_thread(render_templates, request)
    except ExpressionError as error:
        unreadable = isinstance(error.__context__, StoredValueError)
        raise ApplicationError(str(error), type="StoredValueError" if unreadable else "ExpressionError",
                               non_retryable=True) from None
