"""`subflow`: runs another flow as a Temporal child workflow of this run (Kestra's Subflow).

Workflow code cannot read files, so the client finds every flow a run may call before it starts
(`client/subflows.py`) and embeds them in the run's input (`RunRequest.subflows`); a child run gets
the same map. The child's own ledger stays in the child run: here the call is one task run whose
outputs are the child's `executionId`, `state` and `outputs`, and whose state follows the child's
as Kestra's `transmitFailed` says.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, CancelledError, ChildWorkflowError, TerminatedError, TimeoutError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from temporal_flows.expressions.templates import as_text
from temporal_flows.metadata import CANCEL_ACK_BOUND, WORKFLOW_TYPE, label_term, labels_search_attribute_key, search_attribute_keys
from temporal_flows.model.flow import TaskKind
from temporal_flows.model.requests import FLOW_FAILED_ERROR, RunRequest
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.payloads import BIG_VALUE_ADVICE, REQUEST_LIMIT_BYTES, REQUEST_TOO_LARGE_ERROR, check_size
from temporal_flows.tasks.plan import ChildResult

CHILD_CANCEL_BOUND = CANCEL_ACK_BOUND * 2
"""How long a cancelled subflow task waits for its child run to end (the child cancels its own
tasks, runs its `finally` and records its ledger); then the task is CANCELLED whatever the child does."""

TRANSMITTED_STATES = (State.FAILED, State.WARNING, State.CANCELLED)
"""Child states a `transmitFailed` task takes over; without it, the task succeeds whatever they are."""


def flow_key(namespace: str, flow_id: str) -> str:
    """How `RunRequest.subflows` names a flow: `namespace.flowId`."""
    return f"{namespace}.{flow_id}"


@dataclass(frozen=True)
class ChildEnd:
    """How the child run ended, as the parent read it."""

    state: State
    summary: dict[str, Any]
    error: dict[str, Any] | None = None
    timed_out: bool = False
    """The task's own `timeout` ended the wait (and cancelled the child): the task fails whatever
    `transmitFailed` says."""


async def evaluate(ctx: TaskContext) -> ChildResult:
    props = ctx.task.properties
    key = flow_key(props["namespace"], props["flow_id"])
    flow = ctx.subflows.get(key)
    if flow is None:
        message = f"flow `{key}` was not found when the run started (`tflow run --flows-dir` says where to look)"
        return ChildResult(State.FAILED, {}, {"type": "SubflowNotFound", "message": message})
    labels = _labels(ctx.render(props.get("labels")))
    if isinstance(labels, str):
        return ChildResult(State.FAILED, {}, {"type": "InvalidLabels", "message": labels})
    inherited = dict(ctx.labels) if props.get("inherit_labels") else {}
    request = RunRequest(
        flow=flow,
        inputs=ctx.render(props.get("inputs") or {}),
        labels={**inherited, **labels},
        max_workers=ctx.max_workers or None,
        subflows=dict(ctx.subflows),
        caller_outputs={} if flow.get("outputs") else dict(props.get("outputs") or {}),
    )
    size = check_size(asdict(request), f"the request of subflow task `{ctx.task.id}` (the flow, the flows it may "
                      "call, its inputs)", REQUEST_LIMIT_BYTES, BIG_VALUE_ADVICE, REQUEST_TOO_LARGE_ERROR)
    if ctx.make_room is not None:
        await ctx.make_room(size)
    child_labels = {**flow.get("labels", {}), **request.labels}
    wait = props.get("wait", True)
    child_id = _child_id(ctx)
    handle = await workflow.start_child_workflow(
        WORKFLOW_TYPE,
        request,
        id=child_id,
        task_queue=workflow.info().task_queue,
        parent_close_policy=ParentClosePolicy.REQUEST_CANCEL if wait else ParentClosePolicy.ABANDON,
        static_summary=f"{key}: subflow of {workflow.info().workflow_id}, task {ctx.task.id}",
        memo={"parent_task_run": ctx.task_run.id, "source_file": flow.get("source_file", ""), "labels": child_labels},
        search_attributes=_search_attributes(props, child_labels),
    )
    if not wait:
        return ChildResult(State.SUCCESS, {"executionId": child_id})
    end = await _wait_for(handle, ctx)
    return _result(ctx, key, child_id, end)


def _child_id(ctx: TaskContext) -> str:
    """Deterministic: the parent run, the task and its task run; a retry is a new child run."""
    attempt = f"-{ctx.task_run.attempts}" if ctx.task_run.attempts > 1 else ""
    return f"{workflow.info().workflow_id}.{ctx.task.id}.{ctx.task_run.id}{attempt}"


def _search_attributes(props: Mapping[str, Any], labels: Mapping[str, Any]) -> TypedSearchAttributes | None:
    """The child carries each search attribute of runs (`tflow list`) only when the parent carries
    it too: then the server knows it (an unknown one would make the child's start fail)."""
    flow_id_key, namespace_key = search_attribute_keys()
    labels_key = labels_search_attribute_key()
    parent = workflow.info().typed_search_attributes
    if parent.get(flow_id_key) is None or parent.get(namespace_key) is None:
        return None
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(flow_id_key, props["flow_id"]), SearchAttributePair(namespace_key, props["namespace"]),
    ]
    if labels and parent.get(labels_key) is not None:
        pairs.append(SearchAttributePair(labels_key, [label_term(name, str(value)) for name, value in labels.items()]))
    return TypedSearchAttributes(pairs)


def _labels(value: Any) -> dict[str, str] | str:
    """Kestra's `labels` (rendered): a mapping, or a list of `{key, value}`, values as text like a
    flow's labels; a string says what is wrong."""
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(item, dict) and set(item) == {"key", "value"} for item in value):
        value = {item["key"]: item["value"] for item in value}
    if not isinstance(value, dict):
        return f"`labels` must be a mapping or a list of {{key, value}}, got {value!r}"
    return {str(name): str(as_text(label)) for name, label in value.items()}


async def _wait_for(handle: ChildWorkflowHandle[Any, Any], ctx: TaskContext) -> ChildEnd:
    """The child's end; the task's `timeout` (per attempt) and a cancellation of the task cancel it."""
    timeout = ctx.task.timeout_s
    try:
        await workflow.wait([handle], timeout=timeout)
    except (asyncio.CancelledError, CancelledError):
        ctx.cancel_requested = True
        return await _cancel(handle)
    if not handle.done():
        end = await _cancel(handle)
        message = f"the subflow run did not end within the task's timeout ({timeout:g} s); it was cancelled"
        return ChildEnd(end.state, end.summary, {"type": "Timeout", "message": message}, timed_out=True)
    return _read(handle)


_CANCELLED = {"type": "Cancelled", "message": "cancelled"}


async def _cancel(handle: ChildWorkflowHandle[Any, Any]) -> ChildEnd:
    """Cancel the child and wait for it to end, at most CHILD_CANCEL_BOUND (a durable timer)."""
    handle.cancel()
    await workflow.wait([handle], timeout=CHILD_CANCEL_BOUND.total_seconds())
    if not handle.done():
        message = f"cancelled; the subflow run did not end within {CHILD_CANCEL_BOUND.total_seconds():g} s"
        return ChildEnd(State.CANCELLED, {}, {"type": "Cancelled", "message": message})
    return _read(handle)


def _read(handle: ChildWorkflowHandle[Any, Any]) -> ChildEnd:
    """The ended child's state and summary, from its result or its failure."""
    try:
        summary = handle.result()
    except asyncio.CancelledError:
        return ChildEnd(State.CANCELLED, {}, _CANCELLED)
    except ChildWorkflowError as failure:
        return _failed_end(failure.cause)
    if not isinstance(summary, dict):
        return ChildEnd(State.SUCCESS, {})
    return ChildEnd(State(summary.get("state", State.SUCCESS.value)), summary, summary.get("error"))


def _failed_end(cause: BaseException | None) -> ChildEnd:
    if isinstance(cause, ApplicationError) and cause.type == FLOW_FAILED_ERROR and cause.details:
        summary = cause.details[0] if isinstance(cause.details[0], dict) else {}
        return ChildEnd(State.FAILED, summary, summary.get("error") or {"type": "Error", "message": cause.message})
    if isinstance(cause, CancelledError):
        return ChildEnd(State.CANCELLED, {}, {"type": "Cancelled", "message": "the subflow run was cancelled"})
    if isinstance(cause, TerminatedError):
        return ChildEnd(State.CANCELLED, {}, {"type": "Terminated", "message": "the server terminated the subflow run"})
    if isinstance(cause, TimeoutError):
        return ChildEnd(State.FAILED, {}, {"type": "Timeout", "message": "the subflow run timed out"})
    if isinstance(cause, ApplicationError):
        return ChildEnd(State.FAILED, {}, {"type": cause.type or "Error", "message": cause.message})
    return ChildEnd(State.FAILED, {}, {"type": type(cause).__name__, "message": str(cause)})


def _result(ctx: TaskContext, key: str, child_id: str, end: ChildEnd) -> ChildResult:
    """The task's state follows the child's with `transmitFailed` (default true), else SUCCESS
    (Kestra); its outputs are the child's id, state and outputs (declared flow outputs, or the
    task's `outputs` rendered by the child against its own run)."""
    outputs: dict[str, Any] = {"executionId": child_id, "state": end.state.value, "outputs": end.summary.get("outputs") or {}}
    called = end.summary.get("caller_outputs") or {}
    if called.get("error"):
        return ChildResult(State.FAILED, outputs, {"type": "ExpressionError", "message": f"`outputs`: {called['error']}"})
    if "values" in called:
        outputs["outputs"] = called["values"]
    if end.timed_out:
        return ChildResult(State.FAILED, outputs, end.error)
    if end.state is State.CANCELLED and ctx.cancel_requested:
        return ChildResult(State.CANCELLED, outputs, end.error or _CANCELLED)
    if not ctx.task.properties.get("transmit_failed", True) or end.state not in TRANSMITTED_STATES:
        return ChildResult(State.SUCCESS, outputs)
    error = None
    if end.state is not State.WARNING:
        cause = (end.error or {}).get("message") or "no reason given"
        error = {"type": "Subflow" + end.state.value.title(), "message": f"subflow `{key}` (run {child_id}) ended {end.state.value}: {cause}"}
    return ChildResult(end.state, outputs, error)


TYPE = TaskType(
    "subflow",
    TaskKind.PURE,
    ("io.kestra.plugin.core.flow.Subflow", "io.kestra.plugin.core.flow.Flow", "io.kestra.core.tasks.flows.Subflow",
     "io.kestra.core.tasks.flows.Flow"),
    {
        "namespace": PropertySpec("string", required=True, description="the called flow's namespace, written literally"),
        "flow_id": PropertySpec("string", required=True, description="the called flow's id, written literally"),
        "inputs": PropertySpec("mapping", description="inputs of the child run, rendered in this run"),
        "wait": PropertySpec("boolean", default=True, description="wait for the child run (false: start it and succeed)"),
        "transmit_failed": PropertySpec(
            "boolean", default=True, description="the task takes the child's FAILED/WARNING/CANCELLED state (else SUCCESS)"
        ),
        "outputs": PropertySpec(
            "mapping", foreign=True,
            description="name → template rendered against the child run at its end, when the child declares no outputs",
        ),
        "labels": PropertySpec("any", description="labels of the child run: a mapping or a list of {key, value}"),
        "inherit_labels": PropertySpec("boolean", default=False, description="the child run also gets this run's labels"),
        "revision": PropertySpec("integer", description="ignored: the flow file found when the run starts is the revision"),
    },
    "runs another flow as a child workflow",
    evaluate=evaluate,
)
