"""Client side of runs: connect, start a flow run, follow it, and read its result or ledger.

Shared by every CLI command and the tests, so a run is started and read the same way everywhere.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any, Callable

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, CancelledError, TerminatedError, TimeoutError
from temporalio.service import RPCError

from client.codec import plain_secrets_warning
from client.input_files import store_input_files
from client.subflows import resolve_subflows
from temporal_flows.engine.workflow import FlowWorkflow
from temporal_flows.language.dialects.steps import STEP_FLOW_MAX_WORKERS
from temporal_flows.language.loader import LoadedFlow
from temporal_flows.metadata import (
    LEDGER_ACTIVITY,
    SEARCH_ATTRIBUTES,
    label_term,
    labels_search_attribute_key,
    search_attribute_keys,
)
from temporal_flows.model.requests import FLOW_FAILED_ERROR, SUMMARY_QUERY, TASK_RUNS_QUERY, RunRequest

LEDGER_HISTORY_PAGE = 200
"""Events per page when reading a finished run's history backwards for its recorded ledger."""


MAX_RUN_ID_CHARS = 200
_RUN_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_RUN_ID_CHARS - 1}}}")


class InvalidRunId(ValueError):
    """A run id given to start a run that is refused; the message says what was expected."""


def check_run_id(run_id: str) -> str:
    """`run_id` if it is safe as a run id: it names the run's directory in the storage, so `.`, `..`,
    `/`, `\\`, NUL and anything outside a small charset are refused before anything starts."""
    if _RUN_ID.fullmatch(run_id):
        return run_id
    raise InvalidRunId(f"invalid run id {run_id!r}: expected 1 to {MAX_RUN_ID_CHARS} letters, digits, "
                       "'.', '_', ':' or '-', starting with a letter or a digit")


def new_run_id(flow_id: str) -> str:
    return f"{flow_id}-{uuid.uuid4().hex[:12]}"


def run_request(
    loaded: LoadedFlow,
    max_workers: int | None = None,
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    subflows: dict[str, dict[str, Any]] | None = None,
    **limits: int,
) -> RunRequest:
    """The workflow input (validation has checked that the flow fits in one Temporal payload).
    `inputs` are resolved (`temporal_flows.language.inputs.resolve_inputs`); `labels` add to the flow's;
    `subflows` are the flows it calls (`client.subflows.resolve_subflows`), by default found beside
    the flow's file (a missing one raises `FlowError`)."""
    flow = loaded.flow
    if subflows is None:
        subflows = resolve_subflows(loaded)
    if max_workers is None and flow.dialect == "steps":
        max_workers = STEP_FLOW_MAX_WORKERS  # SPEC §3.1
    return RunRequest(
        flow=flow.to_input(), flow_hash=flow.digest(), max_workers=max_workers, inputs=dict(inputs or {}),
        labels=dict(labels or {}), subflows=subflows, **limits,
    )


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
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    warn: Callable[[str], None] = logging.getLogger(__name__).warning,
    subflows: dict[str, dict[str, Any]] | None = None,
    input_files: dict[str, Path] | None = None,
    **limits: int,
) -> WorkflowHandle[Any, Any]:
    """Start one execution of the interpreter workflow with the normalized flow as its input
    (and the flows it calls as subflows: see `run_request`); `warn` (default: logged) hears what
    the starter should know, e.g. SECRET inputs about to be stored unencrypted. An unsafe `run_id`
    raises `InvalidRunId` before anything starts. `input_files` (FILE inputs, from
    `client.input_files.resolve_with_files`) are stored for the run first (`store_input_files`)."""
    if run_id is not None:
        check_run_id(run_id)
    run_id = run_id or new_run_id(loaded.flow.id)
    if input_files:
        inputs = await store_input_files(run_id, dict(inputs or {}), input_files)
    request = run_request(loaded, max_workers=max_workers, inputs=inputs, labels=labels, subflows=subflows, **limits)
    secrets_warning = plain_secrets_warning(client, loaded.flow.inputs, request.inputs)
    if secrets_warning:
        warn(secrets_warning)
    options: dict[str, Any] = {
        "id": run_id,
        "task_queue": task_queue,
        **run_metadata(loaded, request),
    }
    try:
        return await client.start_workflow(FlowWorkflow.run, request, **options)
    except RPCError as error:
        if not lacks_search_attributes(error):
            raise
        warn(f"{MISSING_SEARCH_ATTRIBUTES}; starting without them ({REGISTER_SEARCH_ATTRIBUTES})")
        del options["search_attributes"]
        return await client.start_workflow(FlowWorkflow.run, request, **options)


MISSING_SEARCH_ATTRIBUTES = f"the server does not know the search attributes {'/'.join(SEARCH_ATTRIBUTES)}"
REGISTER_SEARCH_ATTRIBUTES = "register them with `temporal operator search-attribute create`"


def lacks_search_attributes(error: RPCError) -> bool:
    """The server refused a start because it does not know our search attributes ("Namespace
    default has no mapping defined for search attribute X"; other servers: "... is not defined"),
    not because a value is refused (e.g. labels past the 2048-byte size limit)."""
    message = str(error).lower()
    return "search attribute" in message and ("no mapping defined" in message or "not defined" in message)


def run_metadata(loaded: LoadedFlow, request: RunRequest) -> dict[str, Any]:
    """What every run of a flow carries, whether `start_run` or a schedule starts it: the summary
    the Web UI shows, the memo, and the search attributes `tflow list` queries."""
    flow = loaded.flow
    flow_id_key, namespace_key = search_attribute_keys()
    labels = run_labels(flow.labels, request.labels)
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(flow_id_key, flow.id), SearchAttributePair(namespace_key, flow.namespace),
    ]
    if labels:
        pairs.append(SearchAttributePair(labels_search_attribute_key(), [label_term(k, v) for k, v in labels.items()]))
    return {
        "static_summary": static_summary(loaded),
        "memo": {"flow_hash": request.flow_hash, "source_file": flow.source_file, "labels": labels},
        "search_attributes": TypedSearchAttributes(pairs),
    }


def run_labels(flow_labels: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    """A run's labels: the flow's, with the run's own (`tflow run --label`) added or overriding."""
    return {**flow_labels, **given}


async def summary(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's state without its task runs, from the live workflow."""
    return await handle.query(SUMMARY_QUERY)


async def live_task_runs(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """Every task run, page by page through the `task_runs` query (a closed run is replayed)."""
    task_runs: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await handle.query(TASK_RUNS_QUERY, offset)
        task_runs.extend(page["task_runs"])
        offset = page["next_offset"]
    return task_runs


async def live_result(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The SPEC §6 object of a running run: its summary plus every task run so far."""
    result = await summary(handle)
    return {**result, "task_runs": await live_task_runs(handle)}


async def recorded_task_runs(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]] | None:
    """A finished run's ledger from the pages it recorded at the end of its history; None if it
    recorded none (an older run, or one the server terminated)."""
    return (await recorded_run(handle))[1]


async def recorded_run(handle: WorkflowHandle[Any, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """(summary, task runs) of a finished run as it recorded them at the end of its history, read
    backwards so only the tail is fetched; (None, None) where it recorded nothing."""
    client = handle._client  # noqa: SLF001 - the handle's own client and data converter
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id or ""),
        maximum_page_size=LEDGER_HISTORY_PAGE,
    )
    pages: dict[int, dict[str, Any]] = {}
    total: int | None = None
    while not _complete(pages, total):
        response = await client.workflow_service.get_workflow_execution_history_reverse(request)
        for event in response.history.events:
            attributes = event.activity_task_scheduled_event_attributes
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED or attributes.activity_type.name != LEDGER_ACTIVITY:
                continue
            [page] = await client.data_converter.decode(attributes.input.payloads, [dict])
            pages[page["offset"]] = page
            total = page["total"]
        if not response.next_page_token:
            break
        request.next_page_token = response.next_page_token
    if not _complete(pages, total):
        return None, None
    task_runs = [task_run for offset in sorted(pages) for task_run in pages[offset]["task_runs"]]
    return pages[0].get("summary"), task_runs


def _complete(pages: dict[int, dict[str, Any]], total: int | None) -> bool:
    return total is not None and sum(len(page["task_runs"]) for page in pages.values()) == total


async def wait_result(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """Wait for the run to end and return its SPEC §6 object, whatever the final state."""
    try:
        result = await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.type == FLOW_FAILED_ERROR and cause.details:
            result = cause.details[0]
        elif isinstance(cause, CancelledError):
            return await _closed_result(handle, "CANCELLED", {"type": "Cancelled", "message": "the run was cancelled"})
        else:
            return await _closed_result(handle, "FAILED", temporal_error(cause or failure))
    if "task_runs" not in result:  # runs started before the ledger was kept in the history return it whole
        result["task_runs"] = await _finished_task_runs(handle)
    result.pop("task_run_count", None)
    return result


async def _finished_task_runs(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    recorded = await recorded_task_runs(handle)
    if recorded is not None:
        return recorded
    try:
        return await live_task_runs(handle)  # a replay on a worker, if one answers
    except (RPCError, WorkflowQueryFailedError):
        return []


def temporal_error(error: BaseException) -> dict[str, Any]:
    """What Temporal did to a run, said as what it is (not an "internal error")."""
    if isinstance(error, TerminatedError):
        return {"type": "Terminated", "message": f"the server terminated the run: {error.message or 'no reason given'}"}
    if isinstance(error, TimeoutError):
        return {"type": "Timeout", "message": f"the run timed out ({error.type.name if error.type else 'timeout'})"}
    return {"type": type(error).__name__, "message": str(error)}


async def read_result(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's state now: the live ledger while it runs, its result once it ended."""
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        return await live_result(handle)
    return await wait_result(handle)


async def _closed_result(handle: WorkflowHandle[Any, Any], state: str, error: dict[str, Any]) -> dict[str, Any]:
    """A closed run without a result (cancelled, terminated, timed out): what it recorded at its
    end, or a replay if a worker answers, else what the server knows."""
    recorded_summary, recorded = await recorded_run(handle)
    if recorded_summary is not None and recorded is not None:
        recorded_summary.pop("task_run_count", None)
        return {**recorded_summary, "task_runs": recorded}
    try:
        result = await summary(handle)
    except (RPCError, WorkflowQueryFailedError):
        result = await _described_result(handle)
    result.pop("task_run_count", None)
    result["task_runs"] = await _finished_task_runs(handle)
    result["state"] = state
    result["error"] = result.get("error") or {**error, "task_id": None}
    return result


async def _described_result(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """What the server knows of a run that recorded nothing and answers no query (e.g. one it
    terminated): its times, and its flow from its search attributes, else from its input."""
    description = await handle.describe()
    flow_id_key, namespace_key = search_attribute_keys()
    attributes = description.typed_search_attributes
    flow = {"namespace": attributes.get(namespace_key), "id": attributes.get(flow_id_key)}
    if flow["id"] is None:
        flow = await _flow_of_input(handle)
    started, closed = description.start_time, description.close_time
    return {
        "run_id": handle.id,
        "flow": flow,
        "started_at": started.isoformat() if started else None,
        "ended_at": closed.isoformat() if closed else None,
        "duration_s": round((closed - started).total_seconds(), 3) if started and closed else None,
        "outputs": {},
        "ui_url": None,
    }


async def run_input(handle: WorkflowHandle[Any, Any]) -> Any:
    """The run's input (its `RunRequest` as data) from the first event of its history, decoded with
    the client's converter (so an encrypted run reads too); None when it has none."""
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        if payloads:
            [request] = await handle._client.data_converter.decode(payloads[:1], [dict])  # noqa: SLF001
            return request
        break
    return None


async def _flow_of_input(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The flow's namespace and id from the run's input."""
    request = await run_input(handle)
    flow = request.get("flow") if isinstance(request, dict) else None
    if isinstance(flow, dict):
        return {"namespace": flow.get("namespace"), "id": flow.get("id")}
    return {"namespace": None, "id": None}


def ui_url(ui_base: str | None, namespace: str, workflow_id: str, run_id: str | None = None) -> str | None:
    """The Temporal Web UI page of a run; None when the UI is unknown."""
    if not ui_base:
        return None
    base = f"{ui_base.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"
    return f"{base}/{run_id}/history" if run_id else base
