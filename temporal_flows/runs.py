"""Client side of runs: connect, start a flow run, follow it, and read its result or ledger.

Shared by every CLI command and the tests, so a run is started and read the same way everywhere.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError

from temporal_flows.loader import LoadedFlow
from temporal_flows.metadata import search_attribute_keys
from temporal_flows.workflow import FLOW_FAILED_ERROR, SNAPSHOT_QUERY, FlowWorkflow, RunRequest


class TemporalUnreachable(Exception):
    """No Temporal server answered at the address (exit code 3)."""


async def connect(address: str, namespace: str) -> Client:
    try:
        return await Client.connect(address, namespace=namespace)
    except Exception as error:  # noqa: BLE001 - the SDK raises several kinds for an absent server
        raise TemporalUnreachable(
            f"cannot reach Temporal at {address} (namespace {namespace}): {error}. "
            "Start one with `tflow server`, or unset TEMPORAL_ADDRESS to use the embedded server."
        ) from None


def new_run_id(flow_id: str) -> str:
    return f"{flow_id}-{uuid.uuid4().hex[:12]}"


def static_summary(loaded: LoadedFlow) -> str:
    flow = loaded.flow
    title = f"{flow.namespace}.{flow.id}"
    return f"{title}: {flow.description.strip()}" if flow.description else title


async def start_run(
    client: Client,
    loaded: LoadedFlow,
    *,
    task_queue: str,
    run_id: str | None = None,
    max_workers: int | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> WorkflowHandle[Any, Any]:
    """Start one execution of the interpreter workflow with the normalized flow as its input."""
    flow = loaded.flow
    request = RunRequest(flow=flow.to_dict(), flow_hash=flow.digest(), max_workers=max_workers)
    flow_id_key, namespace_key = search_attribute_keys()
    options: dict[str, Any] = {
        "id": run_id or new_run_id(flow.id),
        "task_queue": task_queue,
        "static_summary": static_summary(loaded),
        "memo": {"flow_hash": request.flow_hash, "source_file": flow.source_file},
        "search_attributes": TypedSearchAttributes(
            [SearchAttributePair(flow_id_key, flow.id), SearchAttributePair(namespace_key, flow.namespace)]
        ),
    }
    try:
        return await client.start_workflow(FlowWorkflow.run, request, **options)
    except RPCError as error:
        if "search attribute" not in str(error).lower():
            raise
        warn(
            "the server does not know the search attributes TflowFlowId/TflowNamespace; "
            "starting without them (register them with `temporal operator search-attribute create`)"
        )
        del options["search_attributes"]
        return await client.start_workflow(FlowWorkflow.run, request, **options)


async def snapshot(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's ledger and state from the workflow (live or, by replay on a worker, finished)."""
    return await handle.query(SNAPSHOT_QUERY)


async def wait_result(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """Wait for the run to end and return its SPEC §6 result, whatever the final state."""
    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.type == FLOW_FAILED_ERROR and cause.details:
            return cause.details[0]
        if isinstance(cause, CancelledError):
            return await _closed_snapshot(handle, "CANCELLED", {"type": "Cancelled", "message": "the run was cancelled"})
        return await _closed_snapshot(handle, "FAILED", {"type": type(cause).__name__, "message": str(cause or failure)})


async def read_result(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's state now: the live ledger while it runs, its result once it ended."""
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        return await snapshot(handle)
    return await wait_result(handle)


async def _closed_snapshot(handle: WorkflowHandle[Any, Any], state: str, error: dict[str, Any]) -> dict[str, Any]:
    """A closed run without a result payload (cancelled, terminated): replay its ledger if a
    worker answers, else report what the server knows."""
    try:
        result = await snapshot(handle)
    except RPCError:
        description = await handle.describe()
        result = {
            "run_id": handle.id,
            "flow": {"namespace": None, "id": None},
            "started_at": description.start_time.isoformat() if description.start_time else None,
            "ended_at": description.close_time.isoformat() if description.close_time else None,
            "duration_s": None,
            "outputs": {},
            "ui_url": None,
            "task_runs": [],
        }
    result["state"] = state
    result["error"] = result.get("error") or {**error, "task_id": None}
    return result


def ui_url(ui_base: str, namespace: str, workflow_id: str, run_id: str | None = None) -> str:
    """The Temporal Web UI page of a run."""
    base = f"{ui_base.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"
    return f"{base}/{run_id}/history" if run_id else base
