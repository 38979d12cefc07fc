"""Client side of `tflow resume`: wake a run's paused task runs through the workflow's `resume` update.

An update (not a signal) so the caller learns at once what was resumed, or why nothing was: the
workflow's validator refuses a run with nothing paused, a task that is not paused, or bad inputs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from temporal_flows.model.requests import RESUME_UPDATE, ResumeRequest

RESUME_WAIT = timedelta(seconds=30)
"""How long a resume waits for a worker to take it (the update runs in the workflow, on a worker)."""


class ResumeRefused(Exception):
    """Nothing was resumed: the run is unknown, has ended, has nothing paused, or the request is
    wrong (the message says which; exit code 2)."""


class ResumeUnanswered(Exception):
    """No worker took the resume in time (exit code 1)."""


async def resume_run(client: Client, run_id: str, task: str | None = None, inputs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Resume the paused task runs of `run_id` (all of them, or those of `task`: a task id or a
    task run id); what was resumed, one `waiting_for` entry each plus its resolved `inputs`."""
    handle = client.get_workflow_handle(run_id)
    request = ResumeRequest(task=task, inputs=dict(inputs or {}))
    try:
        result = await handle.execute_update(RESUME_UPDATE, request, result_type=dict, rpc_timeout=RESUME_WAIT)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ResumeRefused(f"run {run_id!r}: {message}") from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise ResumeUnanswered(
            f"run {run_id!r}: no worker took the resume within {RESUME_WAIT.total_seconds():g} s "
            "(is a `tflow worker` running on the run's task queue?)"
        ) from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise ResumeRefused(await _why_not_found(client, run_id)) from None
    return list(result["resumed"])


async def _why_not_found(client: Client, run_id: str) -> str:
    """An update finds no run both when there is none and when it has ended: say which."""
    try:
        description = await client.get_workflow_handle(run_id).describe()
    except RPCError:
        return f"no run {run_id!r} in this namespace"
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name if description.status else "closed"
        return f"run {run_id!r} is not paused: it has ended ({status})"
    return f"run {run_id!r} could not be resumed (the server found no running execution)"
