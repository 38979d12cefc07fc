"""Runs tasks inside the workflow: one generic `run_task` for every task, flowables through the
scheduler (`groups`), runnables as activities (`attempts`, `dispatch`), pure tasks evaluated in
place. Each task run is opened and recorded in the ledger (`recording`); templates render with what
the run has recorded (`rendering`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from temporalio import workflow
from temporalio.exceptions import CancelledError

from temporal_flows.engine.attempts import retry_policy, run_attempts
from temporal_flows.engine.dispatch import Dispatcher, secret_values
from temporal_flows.engine.groups import GroupRunner
from temporal_flows.engine.ledger import Ledger
from temporal_flows.engine.pauses import Pauses
from temporal_flows.engine.recording import Recorder
from temporal_flows.engine.rendering import Renderer
from temporal_flows.engine.history import HistoryBudget
from temporal_flows.engine.results import cancelled, engine_failure, expression_failure, settled
from temporal_flows.expressions.references import contains_reference
from temporal_flows.expressions.templates import ExpressionError
from temporal_flows.metadata import DEFAULT_MAX_PENDING_TASKS, DEFAULT_REDISPATCH_LIMIT
from temporal_flows.model.flow import Flow, Task, TaskKind
from temporal_flows.model.runs import State, TaskRun
from temporal_flows.tasks import TaskType, task_type
from temporal_flows.tasks.base import Scope, TaskContext
from temporal_flows.tasks.flowable.conditional import is_true
from temporal_flows.tasks.payloads import OUTPUTS_LIMIT_BYTES, PayloadTooLarge, check_size
from temporal_flows.tasks.plan import ChildResult, Group, GroupResult

PATCH_PAUSE_IN_PURE_WORK = "pause-in-pure-work"
"""Before it, pure work never gave the worker back: 10,000 pure tasks in a row tripped the SDK's
deadlock detector (2 s without yielding) and the workflow task failed forever."""

PATCH_REFERENCES_FROM_INPUTS = "references-from-inputs"
"""Before it, only recorded outputs made a run render templates reading stored values on a worker;
a run whose inputs held references (a subflow given a stored value) rendered them in the workflow."""

PATCH_BOUNDED_OUTPUTS = "bounded-workflow-outputs"
"""Before it, outputs computed in the workflow had no bound: a big one made the server terminate the run."""

PURE_WORK_BATCH = 500
"""Pure and flowable task runs in a row before the workflow pauses on a 1 ms durable timer, so one
workflow task stays well under the deadlock detector's 2 s (counted, never timed: deterministic)."""


def _inputs_hold_references(inputs: dict[str, Any]) -> bool:
    """Whether the run's inputs hold stored values' references (patched: see PATCH_REFERENCES_FROM_INPUTS)."""
    return contains_reference(inputs) and workflow.patched(PATCH_REFERENCES_FROM_INPUTS)


@dataclass(frozen=True)
class RunLimits:
    """What one run may use: per-group concurrency, pending activities, and lost-worker re-dispatches."""

    max_workers: int = 0
    """`--max-workers`: at most this many children at once in any group (0 = unlimited)."""
    max_pending_tasks: int = DEFAULT_MAX_PENDING_TASKS
    """At most this many activities pending at once in the whole run (Temporal refuses 2,000)."""
    redispatch_limit: int = DEFAULT_REDISPATCH_LIMIT
    """A task whose worker was lost is re-dispatched at most this many times, then fails."""


class Interpreter:
    """One run's flow: wires the recorder, the renderer, the dispatcher and the group runner, and
    runs each task whatever its kind."""

    def __init__(
        self, flow: Flow, run_id: str, started: datetime, limits: RunLimits, ledger: Ledger, pauses: Pauses | None = None,
        subflows: Mapping[str, dict[str, Any]] | None = None, inputs: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None, trigger: dict[str, Any] | None = None,
        history: HistoryBudget | None = None,
    ):
        self.flow = flow
        self.max_workers = limits.max_workers
        self.ledger = ledger
        inputs = inputs or {}
        self.history = history if history is not None else HistoryBudget()
        """What the run has used of its history: no task run starts where it would pass Temporal's limits."""
        self.recorder = Recorder(ledger, holds_references=_inputs_hold_references(inputs))
        self.renderer = Renderer(
            flow, run_id, started, self.recorder, limits.redispatch_limit, inputs,
            labels=labels if labels is not None else dict(flow.labels), trigger=trigger,
        )
        self.dispatcher = Dispatcher(run_id, limits.redispatch_limit, self.recorder, self.history,
                                     secret_values(flow.inputs, inputs))
        self.groups = GroupRunner(self.run_task, self.recorder)
        self.pauses = pauses if pauses is not None else Pauses()
        """Task runs waiting for a resume (the workflow's `resume` update wakes them)."""
        self.subflows = subflows or {}
        """Flows the run may call as subflows (`RunRequest.subflows`)."""
        self._pending_tasks = asyncio.Semaphore(limits.max_pending_tasks)
        """Activities wait here before their task run opens, so no queued task shows as RUNNING."""
        self._pure_in_a_row = 0

    async def run_flow(self) -> GroupResult:
        """The flow's tasks in order, then its `errors` (after a failure) and `finally`."""
        scope = Scope(limit=self.max_workers, retry=retry_policy(self.flow.retry))
        outcome = await self.groups.run_then_finally_if_cancelled(Group.chain(self.flow.tasks), self.flow.finally_tasks, scope)
        if not self.flow.errors and not self.flow.finally_tasks:
            return outcome
        result = ChildResult(outcome.state, error=outcome.error)
        result = await self.groups.errors_and_finally(self.flow.errors, self.flow.finally_tasks, result, scope)
        return GroupResult(result.state, outcome.results, error=result.error)

    def flow_context(self) -> dict[str, Any]:
        """What templates see outside any task (the flow's `outputs` render with it when the run ends)."""
        return self.renderer.flow_context()

    async def flow_templates_on_worker(self, value: Any) -> tuple[dict[str, Any], str | None]:
        """The flow's `outputs` templates that read stored values, rendered by a worker (see `Renderer`)."""
        return await self.renderer.flow_templates_on_worker(value)

    async def run_task(self, task: Task, scope: Scope) -> ChildResult:
        if task.disabled:
            return ChildResult(State.SKIPPED)
        if task_type(task.type).kind is TaskKind.RUNNABLE:
            async with self._pending_tasks:
                return await self._open_and_run(task, scope)
        await self._pause_after_pure_batch()
        return await self._open_and_run(task, scope)

    async def _pause_after_pure_batch(self) -> None:
        self._pure_in_a_row += 1
        if self._pure_in_a_row < PURE_WORK_BATCH:
            return
        self._pure_in_a_row = 0
        if workflow.patched(PATCH_PAUSE_IN_PURE_WORK):
            await workflow.sleep(0.001, summary="pause in pure work")

    async def _open_and_run(self, task: Task, scope: Scope) -> ChildResult:
        """Open the task run, run it and record how it ended. Whatever workflow code raises on the
        way fails this task run (`engine_failure`), never the workflow task."""
        declared = task_type(task.type)
        task_run = self.recorder.open(task, scope)
        own_outputs = None
        try:
            result, own_outputs = await self._execute(declared, task, task_run, scope)
            if declared.kind is not TaskKind.RUNNABLE:
                result, own_outputs = self._bounded(declared, task, result, own_outputs)
        except Exception as error:  # noqa: BLE001 - see engine_failure; cancellation is a BaseException
            result, own_outputs = engine_failure(error, f"task `{task.id}`"), None
        try:
            result = settled(task, result)
            self.recorder.record(declared, task_run, scope, result, own_outputs)
        except Exception as error:  # noqa: BLE001
            result = engine_failure(error, f"recording task `{task.id}`")
            self.recorder.record(declared, task_run, scope, result, None)
        return result

    async def _execute(
        self, declared: TaskType, task: Task, task_run: TaskRun, scope: Scope
    ) -> tuple[ChildResult, dict[str, Any] | None]:
        """The task run's result (and a flowable's own outputs), once the run's history has room."""
        over_budget = self.history.exceeded(self.ledger.bytes)
        if over_budget is not None:
            return ChildResult(State.FAILED, error=over_budget), None
        rendered_on_worker: dict[str, Any] = {}
        context = self._task_context(task, task_run, scope, rendered_on_worker)
        try:
            if self.renderer.needs_worker(task):
                unreadable = await self.renderer.render_stored_values(context, rendered_on_worker)
                if unreadable is not None:
                    return unreadable, None
            if task.run_if is not None and not is_true(context.render(task.run_if)):
                return ChildResult(State.SKIPPED), None
            if declared.kind is TaskKind.FLOWABLE:
                return await self.groups.run_flowable(declared, context)
            return await run_attempts(declared, context, self.ledger, self.dispatcher), None
        except (asyncio.CancelledError, CancelledError):
            return cancelled(), None
        except ExpressionError as error:
            return expression_failure(error), None
        except PayloadTooLarge as error:
            return ChildResult(State.FAILED, error=error.error), None

    def _bounded(
        self, declared: TaskType, task: Task, result: ChildResult, own: dict[str, Any] | None
    ) -> tuple[ChildResult, dict[str, Any] | None]:
        """Outputs computed in the workflow over `OUTPUTS_LIMIT_BYTES` (or nested too deep) fail the
        task run: they would be kept inline in the ledger and the history (a runnable's big outputs
        are stored by reference on its worker instead)."""
        outputs = self.recorder.outputs_of(declared, result, own)
        if not outputs:
            return result, own
        try:
            check_size(outputs, f"the outputs of task `{task.id}`", OUTPUTS_LIMIT_BYTES)
        except PayloadTooLarge as error:
            if not workflow.patched(PATCH_BOUNDED_OUTPUTS):
                return result, own
            return ChildResult(State.FAILED, error=error.error), None
        return result, own

    def _task_context(self, task: Task, task_run: TaskRun, scope: Scope, rendered: dict[str, Any]) -> TaskContext:
        return TaskContext(
            task, task_run, scope, self.max_workers, self.renderer.render_for(task, task_run, scope, rendered),
            lambda: workflow.random().random(), pauses=self.pauses, labels=self.renderer.labels, subflows=self.subflows,
            make_room=self.history.make_room,
        )
