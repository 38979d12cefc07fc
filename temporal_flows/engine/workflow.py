"""FlowWorkflow: the one generic Temporal workflow that interprets a normalized flow.

It wires the interpreter, the scheduler and the ledger, and answers the `summary` and `task_runs` queries with the
run's live state. The flow definition is the workflow input, so a run never sees later edits.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from temporal_flows.engine.history import SEND_LIMIT_BYTES, HistoryBudget
from temporal_flows.engine.interpreter import Interpreter, RunLimits
from temporal_flows.engine.ledger import Ledger, LedgerPage
from temporal_flows.engine.pauses import Pauses, ResumeRefused
from temporal_flows.engine.results import is_sdk_error, unexpected_error
from temporal_flows.expressions.templates import ExpressionError, render
from temporal_flows.language.flow_outputs import OutputError, render_outputs
from temporal_flows.language.inputs import InputError, resolve_inputs
from temporal_flows.metadata import (
    LEDGER_ACTIVITY,
    LEDGER_PAGE_BYTES,
    WORKFLOW_TYPE,
)
from temporal_flows.model.flow import Flow
from temporal_flows.model.requests import (
    FLOW_FAILED_ERROR,
    RESUME_REFUSED_ERROR,
    RESUME_UPDATE,
    SUMMARY_QUERY,
    TASK_RUNS_QUERY,
    ResumeRequest,
    RunRequest,
)
from temporal_flows.model.runs import State, timestamp
from temporal_flows.tasks.payloads import SUMMARY_OUTPUTS_LIMIT_BYTES, PayloadTooLarge, bounded_error, check_size, measure
from temporal_flows.tasks.plan import GroupResult

PATCH_LEDGER_IN_HISTORY = "ledger-in-history"
"""Before it, the result was the whole ledger and nothing was recorded at the end."""
PATCH_LEDGER_IN_BATCHES = "ledger-in-batches"
"""Before it, every page was scheduled in one workflow task: past 4 MiB the server refused it forever."""


PATCH_SCHEDULE_TRIGGER = "schedule-trigger"
"""Before it, runs a schedule started had no `trigger` variables either."""
PATCH_BOUNDED_SUMMARY = "bounded-summary"
"""Before it, flow outputs (and a subflow's outputs for its caller) had no bound but Temporal's."""

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")
"""What Temporal adds to a run a schedule started: its scheduled time and the schedule's id."""


def _schedule_trigger(info: workflow.Info) -> dict[str, Any] | None:
    """Kestra's `trigger` variables for a run a Schedule trigger started (`trigger.date`: the time
    it was scheduled for); None for other runs, whose templates see no `trigger`."""
    scheduled = info.typed_search_attributes.get(SCHEDULED_START)
    if scheduled is None or not workflow.patched(PATCH_SCHEDULE_TRIGGER):
        return None
    return {"date": timestamp(scheduled), "scheduleId": info.typed_search_attributes.get(SCHEDULED_BY)}


@workflow.defn(name=WORKFLOW_TYPE)
class FlowWorkflow:
    """The result (and a failure's details) is the run's bounded summary; the task runs are read
    in pages: live through the `task_runs` query, and once the run has ended from the copy it
    keeps in its own history (one `tflow.ledger` activity per page), so reading a finished run
    replays nothing."""

    def __init__(self) -> None:
        self._ledger = Ledger(now=workflow.now, new_id=lambda: workflow.uuid4().hex[:16])
        self._flow: Flow | None = None
        self._state = State.RUNNING
        self._error: dict[str, Any] | None = None
        self._ended: datetime | None = None
        self._pauses = Pauses()
        self._caller_outputs: dict[str, Any] | None = None
        self._outputs: dict[str, Any] = {}
        self._history = HistoryBudget()

    @workflow.run
    async def run(self, request: RunRequest) -> dict[str, Any]:
        """The run; an exception workflow code did not foresee fails it (`_fail_run`) rather than
        leaving it stuck on a workflow task that fails forever."""
        try:
            return await self._run(request)
        except ApplicationError as error:
            if error.type == FLOW_FAILED_ERROR:
                raise
            return await self._fail_run(error)
        except Exception as error:  # noqa: BLE001 - cancellation is a BaseException, SDK errors go on
            if is_sdk_error(error):
                raise
            return await self._fail_run(error)

    async def _run(self, request: RunRequest) -> dict[str, Any]:
        try:
            self._flow = Flow.from_dict(request.flow)
        except Exception as error:  # noqa: BLE001 - a run started by hand (Temporal's CLI or UI), not by tflow
            if is_sdk_error(error):
                raise
            raise InvalidRunInput(f"the run's input is not a flow this worker reads ({type(error).__name__}: {error}); "
                                  "start runs with `tflow run` or `tflow deploy`") from None
        info = workflow.info()
        limits = RunLimits(request.max_workers or 0, request.max_pending_tasks, request.redispatch_limit)
        try:
            inputs = resolve_inputs(self._flow.inputs, request.inputs)
        except InputError as error:
            return await self._refuse_inputs(error)
        interpreter = Interpreter(
            self._flow, info.workflow_id, info.start_time, limits, self._ledger, self._pauses, request.subflows,
            inputs=inputs, labels={**self._flow.labels, **request.labels}, trigger=_schedule_trigger(info),
            history=self._history,
        )
        try:
            outcome = await interpreter.run_flow()
        except (asyncio.CancelledError, CancelledError):
            self._finish(State.CANCELLED, {"type": "Cancelled", "message": "the run was cancelled", "task_id": None})
            await self._record_ledger()
            raise
        if request.caller_outputs:
            self._caller_outputs = _render_caller_outputs(interpreter, request.caller_outputs)
        outcome = await self._render_outputs(interpreter, outcome)
        self._finish(outcome.state, outcome.error)
        if not await self._record_ledger():
            return self._legacy_result()
        result = self.summary()
        if outcome.state is State.FAILED:
            message = (outcome.error or {}).get("message", "a task failed")
            task_id = (outcome.error or {}).get("task_id")
            raise ApplicationError(
                f"task `{task_id}` failed: {message}" if task_id else message,
                result,
                type=FLOW_FAILED_ERROR,
                non_retryable=True,
            )
        return result

    async def _fail_run(self, error: Exception) -> dict[str, Any]:
        """The run ends FAILED with the unexpected error's type and message, its ledger recorded."""
        workflow.logger.warning("unexpected error in the run, which fails", exc_info=error)
        self._finish(State.FAILED, {**unexpected_error(error), "task_id": None})
        try:
            await self._record_ledger()
        except Exception as recording:  # noqa: BLE001 - the run fails anyway; clients fall back to a query
            if is_sdk_error(recording):
                raise
        message = f"{self._error['type']}: {self._error['message']}" if self._error else "the run failed"
        raise ApplicationError(message, self.summary(), type=FLOW_FAILED_ERROR, non_retryable=True)

    async def _refuse_inputs(self, error: InputError) -> dict[str, Any]:
        """Inputs that do not fit the flow's declarations: the run ends FAILED before any task runs."""
        self._finish(State.FAILED, {"type": "InputError", "message": str(error), "task_id": None})
        await self._record_ledger()
        raise ApplicationError(f"invalid inputs: {error}", self.summary(), type=FLOW_FAILED_ERROR, non_retryable=True)

    async def _render_outputs(self, interpreter: Interpreter, outcome: GroupResult) -> GroupResult:
        """The flow's `outputs`, rendered after `finally` of a run that did not fail; one that
        cannot render fails the run (SPEC §5). Templates reading stored values render on a worker."""
        if not self._flow or not self._flow.outputs or outcome.state not in (State.SUCCESS, State.WARNING):
            return outcome
        known, unreadable = await interpreter.flow_templates_on_worker([item.get("value") for item in self._flow.outputs])
        if unreadable is not None:
            return replace(outcome, state=State.FAILED, error={"type": "OutputError", "message": unreadable, "task_id": None})
        try:
            outputs = render_outputs(self._flow.outputs, interpreter.flow_context(), known)
            _check_summary_outputs(outputs, "the flow's `outputs`")
        except OutputError as error:
            return replace(outcome, state=State.FAILED, error={"type": "OutputError", "message": str(error), "task_id": None})
        except PayloadTooLarge as error:
            return replace(outcome, state=State.FAILED, error={**error.error, "task_id": None})
        self._outputs = outputs
        return outcome

    def _finish(self, state: State, error: dict[str, Any] | None) -> None:
        self._state = state
        self._error = bounded_error(error)
        self._ended = workflow.now()

    async def _record_ledger(self) -> bool:
        """Keep the final ledger in the run's history, page by page (the first also carries the
        summary, which a cancelled run has no result for), where clients read it without a replay.
        False for a run that started before this existed (it returns the whole ledger)."""
        if not workflow.patched(PATCH_LEDGER_IN_HISTORY):
            return False
        if not self._history.fits(self._ledger.bytes):
            workflow.logger.warning("the ledger does not fit in the run's history; reading this run will replay it")
            return True
        pages = self._ledger.pages(LEDGER_PAGE_BYTES)
        summary = self.summary()
        batches = [list(range(len(pages)))]
        if sum(page.size for page in pages) > SEND_LIMIT_BYTES and workflow.patched(PATCH_LEDGER_IN_BATCHES):
            batches = _batches([page.size for page in pages], SEND_LIMIT_BYTES - measure(summary, "the summary"))
        for batch in batches:
            records = [
                workflow.execute_activity(
                    LEDGER_ACTIVITY,
                    {**pages[index].to_dict(), "summary": summary} if index == 0 else pages[index].to_dict(),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                    summary=f"ledger {index + 1}/{len(pages)}",
                )
                for index in batch
            ]
            try:
                await asyncio.gather(*records)
            except ActivityError:
                workflow.logger.warning("could not record the ledger in the history; reading this run will replay it")
                break
        return True

    def _legacy_result(self) -> dict[str, Any]:
        """What runs started before PATCH_LEDGER_IN_HISTORY returned: the summary plus every task run."""
        if self._state is State.FAILED:
            message = (self._error or {}).get("message", "a task failed")
            task_id = (self._error or {}).get("task_id")
            raise ApplicationError(
                f"task `{task_id}` failed: {message}" if task_id else message,
                {**self.summary(), "task_runs": self._ledger.to_list()},
                type=FLOW_FAILED_ERROR,
                non_retryable=True,
            )
        return {**self.summary(), "task_runs": self._ledger.to_list()}

    @workflow.update(name=RESUME_UPDATE)
    def resume(self, request: ResumeRequest) -> dict[str, Any]:
        """Wake the paused task runs the request names (SPEC §8 `tflow resume`)."""
        try:
            return {"resumed": self._pauses.resume(request.task, request.inputs, self._task_ids())}
        except ResumeRefused as refused:  # it ended between the validator and here
            raise ApplicationError(str(refused), type=RESUME_REFUSED_ERROR, non_retryable=True) from None
        except Exception as error:  # noqa: BLE001 - the update fails, never the workflow task
            if is_sdk_error(error):
                raise
            raise ApplicationError(unexpected_error(error)["message"], type=RESUME_REFUSED_ERROR, non_retryable=True) from None

    @resume.validator
    def _check_resume(self, request: ResumeRequest) -> None:
        try:
            self._pauses.check(request.task, request.inputs, self._task_ids())
        except ResumeRefused as refused:
            raise ApplicationError(str(refused), type=RESUME_REFUSED_ERROR, non_retryable=True) from None

    def _task_ids(self) -> set[str]:
        return {task.id for task in self._flow.all_tasks()} if self._flow else set()

    @workflow.query(name=SUMMARY_QUERY)
    def summary(self) -> dict[str, Any]:
        """The run as SPEC §6 describes it without `task_runs`; `state` is RUNNING until it ends
        (PAUSED while a pause waits, as Kestra says), and a live run lists in `waiting_for` the
        pauses it waits for (see `temporal_flows.engine.pauses.PausedTask.describe`)."""
        info = workflow.info()
        flow = self._flow
        duration = ((self._ended or workflow.now()) - info.start_time).total_seconds()
        waiting = self._pauses.waiting_for() if self._ended is None else []
        state = State.PAUSED if waiting else self._state
        return {
            "run_id": info.workflow_id,
            "flow": {"namespace": flow.namespace if flow else None, "id": flow.id if flow else None},
            "state": state.value,
            "started_at": timestamp(info.start_time),
            "ended_at": timestamp(self._ended) if self._ended else None,
            "duration_s": round(duration, 3),
            "outputs": self._outputs,
            "error": self._error,
            "ui_url": None,
            "task_run_count": len(self._ledger.task_runs),
            **({"waiting_for": waiting} if self._ended is None else {}),
            **({"caller_outputs": self._caller_outputs} if self._caller_outputs is not None else {}),
        }

    @workflow.query(name=TASK_RUNS_QUERY)
    def task_runs(self, offset: int = 0) -> dict[str, Any]:
        """The task runs from `offset` in creation order, one bounded page (see `next_offset`)."""
        page: LedgerPage = self._ledger.page(offset, LEDGER_PAGE_BYTES)
        return page.to_dict()


class InvalidRunInput(ValueError):
    """The workflow input is not a `RunRequest` holding a normalized flow."""


def _batches(sizes: list[int], limit: int) -> list[list[int]]:
    """Indexes of `sizes` in order, cut where a batch would pass `limit` (each batch at least one)."""
    batches: list[list[int]] = [[]]
    total = 0
    for index, size in enumerate(sizes):
        if batches[-1] and total + size > limit:
            batches.append([])
            total = 0
        batches[-1].append(index)
        total += size
    return batches


def _render_caller_outputs(interpreter: Interpreter, templates: dict[str, Any]) -> dict[str, Any]:
    """`{"values": ...}`, or `{"error": message}`: a failure here fails the calling task, not this run (Kestra)."""
    try:
        values = render(templates, interpreter.flow_context())
        _check_summary_outputs(values, "the subflow's `outputs` for its caller")
    except ExpressionError as error:
        return {"error": str(error)}
    except PayloadTooLarge as error:
        return {"error": error.message}
    return {"values": values}


def _check_summary_outputs(outputs: Any, what: str) -> None:
    """`PayloadTooLarge` for outputs the run's summary cannot carry (patched: see PATCH_BOUNDED_SUMMARY)."""
    try:
        check_size(outputs, what, SUMMARY_OUTPUTS_LIMIT_BYTES)
    except PayloadTooLarge:
        if workflow.patched(PATCH_BOUNDED_SUMMARY):
            raise
