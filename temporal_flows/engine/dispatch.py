"""One attempt of a runnable task as an activity: its request built from the rendered properties,
dispatched to the workers, and its result, failure, lost worker or cancellation read back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import is_dataclass
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

from activities.wire import to_wire
from temporal_flows.engine.history import HistoryBudget
from temporal_flows.engine.recording import Recorder
from temporal_flows.engine.results import cancelled
from temporal_flows.engine.worker_render import check_no_stored_values, root_run_id
from temporal_flows.metadata import CANCEL_ACK_BOUND, HEARTBEAT_TIMEOUT
from temporal_flows.model.runs import State, TaskRun
from temporal_flows.tasks.base import TaskContext
from temporal_flows.tasks.payloads import REQUEST_LIMIT_BYTES, REQUEST_TOO_LARGE_ERROR, check_size
from temporal_flows.tasks.plan import ChildResult
from temporal_flows.tasks.runnable.activity import RunIdentity, RunnableType, activity_options

PATCH_BOUNDED_CANCEL_WAIT = "bounded-cancel-wait"
"""Before it, a cancelled activity was awaited without bound (a durable timer now caps the wait)."""

REQUEST_ADVICE = "pass big values as files (`inputFiles`) or keep them in a runnable task's outputs, stored by reference"


class Dispatcher:
    """Runs attempts as activities of one run; the metrics they report go to the recorder."""

    def __init__(self, run_id: str, redispatch_limit: int, recorder: Recorder, history: HistoryBudget | None = None,
                 secrets: Sequence[str] = ()):
        self.run_id = run_id
        self.redispatch_limit = redispatch_limit
        self.recorder = recorder
        self.history = history if history is not None else HistoryBudget()
        self.secrets = tuple(secrets)
        """The run's SECRET input values: a request holding one names it (`masked`) for the worker to mask."""

    async def run(self, runnable: RunnableType, context: TaskContext) -> ChildResult:
        """One attempt: the activity's result, or why it did not succeed."""
        task, task_run, scope = context.task, context.task_run, context.scope
        props = context.render(task.properties)
        if self.recorder.holds_references:
            check_no_stored_values(props)
        call = runnable.build(task, props, RunIdentity(self.run_id, task_run.id, root_run_id()))
        summary = task.id if scope.value is None else f"{task.id} [{scope.value}]"
        options = activity_options(task, summary, self.redispatch_limit)
        request = to_wire(call.request) if is_dataclass(call.request) else call.request  # same JSON, no deep copy
        masked = held_values(request, self.secrets) if self.secrets and isinstance(request, dict) else []
        if masked:
            request = {**request, "masked": masked}
        size = check_size(request, f"the request of task `{task.id}` (its rendered properties)", REQUEST_LIMIT_BYTES,
                          REQUEST_ADVICE, REQUEST_TOO_LARGE_ERROR)
        await self.history.make_room(size)
        handle = workflow.start_activity(call.activity, request, result_type=call.result_type, **options)
        try:
            try:
                result = await asyncio.shield(handle)
            except asyncio.CancelledError:
                if not workflow.patched(PATCH_BOUNDED_CANCEL_WAIT):
                    handle.cancel()  # legacy: wait for the acknowledgement without bound
                    result = await handle
                else:
                    context.cancel_requested = True
                    return await self._cancel(handle, task_run, runnable)
        except ActivityError as error:
            return self._failure(task_run, runnable, error)
        return self._success(task_run, runnable, result)

    async def _cancel(self, handle: Any, task_run: TaskRun, runnable: RunnableType) -> ChildResult:
        """Cancel a running activity and wait for its acknowledgement, at most the process's grace
        period plus a margin (a durable timer); then the task is CANCELLED whatever the worker does."""
        handle.cancel()
        await workflow.wait([handle], timeout=CANCEL_ACK_BOUND.total_seconds())
        if not handle.done():
            message = f"cancelled; the worker did not acknowledge within {CANCEL_ACK_BOUND.total_seconds():g} s"
            return ChildResult(State.CANCELLED, error={"type": "Cancelled", "message": message})
        try:
            result = handle.result()
        except ActivityError as error:
            return self._failure(task_run, runnable, error)
        except asyncio.CancelledError:
            return cancelled()
        return self._success(task_run, runnable, result)  # it finished before the cancellation reached it

    def _success(self, task_run: TaskRun, runnable: RunnableType, result: Any) -> ChildResult:
        outcome = runnable.read(result)
        self.recorder.keep_metrics(task_run, outcome.metrics)
        return ChildResult(State.SUCCESS, outcome.outputs)

    def _failure(self, task_run: TaskRun, runnable: RunnableType, error: ActivityError) -> ChildResult:
        cause = error.cause
        if isinstance(cause, CancelledError):
            return cancelled()
        if isinstance(cause, ApplicationError):
            outputs: dict[str, Any] = {}
            if cause.details and isinstance(cause.details[0], dict):
                outcome = runnable.read(cause.details[0])
                outputs = outcome.outputs
                self.recorder.keep_metrics(task_run, outcome.metrics)
            return ChildResult(State.FAILED, outputs, {"type": cause.type or "Error", "message": cause.message})
        if isinstance(cause, TimeoutError):
            lost = self.redispatch_limit + 1
            message = (
                f"its worker was lost {lost} time{'s' if lost > 1 else ''} (no heartbeat for "
                f"{HEARTBEAT_TIMEOUT.total_seconds():g} s, or no result within the task's time); "
                f"re-dispatched {self.redispatch_limit} times, giving up"
            )
            return ChildResult(State.FAILED, error={"type": "WorkerLost", "message": message})
        return ChildResult(State.FAILED, error={"type": type(cause).__name__, "message": str(cause or error)})


def secret_values(declared: Sequence[Mapping[str, Any]], inputs: Mapping[str, Any]) -> tuple[str, ...]:
    """The values (as text) of a run's SECRET inputs, from the flow's declarations and its inputs."""
    names = [item.get("id") for item in declared if isinstance(item, Mapping) and item.get("type") == "SECRET"]
    return tuple(str(inputs[name]) for name in names if inputs.get(name) is not None and str(inputs[name]))


def held_values(request: Any, values: Sequence[str]) -> list[str]:
    """The `values` that `request` holds somewhere (its JSON text contains them): the worker masks
    those, and only those reach it."""
    text = json.dumps(request, ensure_ascii=False, default=str)
    return [value for value in values if json.dumps(value, ensure_ascii=False)[1:-1] in text]
