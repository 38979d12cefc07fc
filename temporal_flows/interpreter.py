"""Runs tasks inside the workflow: one generic `run_task` for every task, flowables through the
scheduler, runnables as activities, pure tasks evaluated in place. Records everything in the ledger.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

from temporal_flows.expressions import ExpressionError, render, render_string
from temporal_flows.ledger import Ledger, State, TaskRun, timestamp
from temporal_flows.metadata import CANCEL_ACK_BOUND, DEFAULT_MAX_PENDING_TASKS, DEFAULT_REDISPATCH_LIMIT, HEARTBEAT_TIMEOUT
from temporal_flows.model import Flow, Task, TaskKind
from temporal_flows.runnables import RUNNABLES, RunIdentity, activity_options
from temporal_flows.scheduler import ChildResult, Group, GroupResult, Strategy, run_group
from temporal_flows.tasktypes import task_kind

FALSY_CONDITIONS = ("", "false", "0", "-0", "none", "null")

PATCH_ORDERING_IS_NOT_A_LIMIT = "ordering-is-not-a-limit"
"""Before it, a group inside a `sequential` inherited the chain's limit of 1 as its own cap."""
PATCH_BOUNDED_CANCEL_WAIT = "bounded-cancel-wait"
"""Before it, a cancelled activity was awaited without bound (a durable timer now caps the wait)."""


@dataclass(frozen=True)
class Scope:
    """Where a task runs: its enclosing task runs (nearest first) and their concurrency limit."""

    parents: tuple[TaskRun, ...] = ()
    limit: int = 0
    value: Any = None
    iteration: int | None = None


def combine_limits(*limits: int | None) -> int:
    """The tightest of several concurrency limits, where 0/None means unlimited."""
    bounded = [limit for limit in limits if limit]
    return min(bounded) if bounded else 0


@dataclass(frozen=True)
class RunLimits:
    """What one run may use: per-group concurrency, pending activities, and lost-worker re-dispatches."""

    max_workers: int = 0
    """`--max-workers`: at most this many children at once in any group (0 = unlimited)."""
    max_pending_tasks: int = DEFAULT_MAX_PENDING_TASKS
    """At most this many activities pending at once in the whole run (Temporal refuses 2,000)."""
    redispatch_limit: int = DEFAULT_REDISPATCH_LIMIT
    """A task whose worker was lost is re-dispatched at most this many times, then fails."""


class _Now:
    """`now()` in templates: the workflow's clock; printed without the call it is the same text
    (a bare function would print its memory address, different on every replay)."""

    def __call__(self) -> str:
        return timestamp(workflow.now())

    __str__ = __repr__ = __call__


class Interpreter:
    def __init__(self, flow: Flow, run_id: str, started: datetime, limits: RunLimits, ledger: Ledger):
        self.flow = flow
        self.run_id = run_id
        self.started = started
        self.limits = limits
        self.max_workers = limits.max_workers
        self.ledger = ledger
        self._pending_tasks = asyncio.Semaphore(limits.max_pending_tasks)
        """Activities wait here before their task run opens, so no queued task shows as RUNNING."""
        self.outputs: dict[str, dict[str, Any]] = {}
        self.task_results: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, list[dict[str, Any]]] = {}
        """task run id → metrics its activity reported, until the task run closes."""

    async def run_flow(self) -> GroupResult:
        root = Group.chain(self.flow.tasks)
        return await run_group(root, lambda task: self.run_task(task, Scope(limit=self.max_workers)))

    # -- one task, whatever its kind --------------------------------------------------------

    async def run_task(self, task: Task, scope: Scope) -> ChildResult:
        if task.disabled:
            return ChildResult(State.SKIPPED)
        if task_kind(task.type) is TaskKind.RUNNABLE:
            async with self._pending_tasks:
                return await self._open_and_run(task, scope)
        return await self._open_and_run(task, scope)

    async def _open_and_run(self, task: Task, scope: Scope) -> ChildResult:
        parent = scope.parents[0] if scope.parents else None
        task_run = self.ledger.open(task.id, task.type, parent, scope.value, scope.iteration)
        try:
            if task.run_if is not None and not self._condition_holds(task, task_run, scope):
                result = ChildResult(State.SKIPPED)
            else:
                result = await self._execute(task, task_run, scope)
        except (asyncio.CancelledError, CancelledError):
            result = _cancelled()
        except ExpressionError as error:
            result = ChildResult(State.FAILED, error={"type": "ExpressionError", "message": str(error)})
        result = self._apply_allowances(task, result)
        self._record(task, task_run, result)
        return result

    async def _execute(self, task: Task, task_run: TaskRun, scope: Scope) -> ChildResult:
        kind = task_kind(task.type)
        if kind is TaskKind.FLOWABLE:
            return await self._run_flowable(task, task_run, scope)
        if kind is TaskKind.RUNNABLE:
            return await self._run_activity(task, task_run, scope)
        return self._evaluate(task, task_run, scope)

    @staticmethod
    def _apply_allowances(task: Task, result: ChildResult) -> ChildResult:
        state, tolerated = result.state, result.tolerated
        if state is State.FAILED and task.allow_failure:
            state, tolerated = State.WARNING, True
        if state is State.WARNING and task.allow_warning and not tolerated:
            state = State.SUCCESS
        if state is result.state and tolerated == result.tolerated:
            return result
        return ChildResult(state, result.output, result.error, tolerated=tolerated, winner=result.winner)

    def _record(self, task: Task, task_run: TaskRun, result: ChildResult) -> None:
        """Close the task run and make its outputs visible to later templates.

        A flowable's output (its group's map) is only `tasks.<id>.output`; it has no Kestra outputs.
        """
        outputs = None
        if task_kind(task.type) is not TaskKind.FLOWABLE and isinstance(result.output, dict):
            outputs = result.output
        elif result.winner is not None:
            outputs = {"winner": result.winner}
        if outputs is not None:
            self.outputs[task.id] = outputs
        metrics = self._metrics.pop(task_run.id, None)
        self.ledger.close(task_run, result.state, outputs=outputs, error=result.error, metrics=metrics)
        self.task_results[task.id] = {
            "output": result.output, "state": result.state.value, "error": result.error, "winner": result.winner,
        }

    # -- flowables: the scheduler -----------------------------------------------------------

    async def _run_flowable(self, task: Task, task_run: TaskRun, scope: Scope) -> ChildResult:
        group, children_limit = self._group_for(task, scope)
        child_scope = Scope((task_run, *scope.parents), children_limit, scope.value, scope.iteration)
        outcome = await run_group(group, lambda child: self.run_task(child, child_scope))
        return ChildResult(outcome.state, outcome.output, outcome.error, winner=outcome.winner)

    def _group_for(self, task: Task, scope: Scope) -> tuple[Group, int]:
        """The task's group, and the concurrency limit its descendants inherit: the tightest of
        every enclosing `parallel`'s and `--max-workers` (SPEC §3.4); ordering is not a limit."""
        props = task.properties
        if task.type == "parallel":
            limit = combine_limits(props.get("concurrent"), scope.limit, self.max_workers)
            group = Group(
                task.tasks,
                limit=limit,
                strategy=props.get("strategy", Strategy.WAIT_ALL),
                min_success=props.get("min_success", 1),
                timeout_s=task.timeout_s,
                id=task.id,
            )
            return group, limit
        if task.type == "sequential":
            inherited = scope.limit if workflow.patched(PATCH_ORDERING_IS_NOT_A_LIMIT) else 1
            return Group.chain(task.tasks, timeout_s=task.timeout_s, id=task.id), inherited
        raise ApplicationError(f"no scheduler mapping for flowable type `{task.type}`", non_retryable=True)

    # -- runnables: activities --------------------------------------------------------------

    async def _run_activity(self, task: Task, task_run: TaskRun, scope: Scope) -> ChildResult:
        runnable = RUNNABLES[task.type]
        props = render(task.properties, self._context(task, task_run, scope))
        call = runnable.build(task, props, RunIdentity(self.run_id, task_run.id))
        summary = task.id if scope.value is None else f"{task.id} [{scope.value}]"
        options = activity_options(task, summary, self.limits.redispatch_limit)
        handle = workflow.start_activity(call.activity, call.request, result_type=call.result_type, **options)
        try:
            try:
                result = await asyncio.shield(handle)
            except asyncio.CancelledError:
                if not workflow.patched(PATCH_BOUNDED_CANCEL_WAIT):
                    handle.cancel()  # legacy: wait for the acknowledgement without bound
                    result = await handle
                else:
                    return await self._cancel_activity(handle, task_run, runnable)
        except ActivityError as error:
            return self._activity_failure(task_run, runnable, error)
        outcome = runnable.read(result)
        self._metrics[task_run.id] = outcome.metrics
        return ChildResult(State.SUCCESS, outcome.outputs)

    async def _cancel_activity(self, handle: Any, task_run: TaskRun, runnable: Any) -> ChildResult:
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
            return self._activity_failure(task_run, runnable, error)
        except asyncio.CancelledError:
            return _cancelled()
        outcome = runnable.read(result)  # it finished before the cancellation reached it
        self._metrics[task_run.id] = outcome.metrics
        return ChildResult(State.SUCCESS, outcome.outputs)

    def _activity_failure(self, task_run: TaskRun, runnable: Any, error: ActivityError) -> ChildResult:
        cause = error.cause
        if isinstance(cause, CancelledError):
            return _cancelled()
        if isinstance(cause, ApplicationError):
            outputs: dict[str, Any] = {}
            if cause.details and isinstance(cause.details[0], dict):
                outcome = runnable.read(cause.details[0])
                outputs = outcome.outputs
                self._metrics[task_run.id] = outcome.metrics
            return ChildResult(State.FAILED, outputs, {"type": cause.type or "Error", "message": cause.message})
        if isinstance(cause, TimeoutError):
            lost = self.limits.redispatch_limit + 1
            message = (
                f"its worker was lost {lost} time{'s' if lost > 1 else ''} (no heartbeat for "
                f"{HEARTBEAT_TIMEOUT.total_seconds():g} s, or no result within the task's time); "
                f"re-dispatched {self.limits.redispatch_limit} times, giving up"
            )
            return ChildResult(State.FAILED, error={"type": "WorkerLost", "message": message})
        return ChildResult(State.FAILED, error={"type": type(cause).__name__, "message": str(cause or error)})

    # -- pure tasks -------------------------------------------------------------------------

    def _evaluate(self, task: Task, task_run: TaskRun, scope: Scope) -> ChildResult:
        context = self._context(task, task_run, scope)
        if task.type == "return":
            return ChildResult(State.SUCCESS, {"value": render_string(task.properties.get("format", ""), context)})
        if task.type == "log":
            message = render(task.properties["message"], context)
            workflow.logger.info("[%s] %s", task.id, message)
            return ChildResult(State.SUCCESS, {})
        raise ApplicationError(f"no evaluator for task type `{task.type}`", non_retryable=True)

    # -- expressions ------------------------------------------------------------------------

    def _condition_holds(self, task: Task, task_run: TaskRun, scope: Scope) -> bool:
        rendered = render_string(str(task.run_if), self._context(task, task_run, scope))
        return rendered.strip().lower() not in FALSY_CONDITIONS

    def _context(self, task: Task, task_run: TaskRun, scope: Scope) -> dict[str, Any]:
        now = workflow.now()
        parents = [
            {"taskrun": {"id": parent.id, "value": parent.value}, "task": {"id": parent.task_id}}
            for parent in scope.parents
        ]
        return {
            "flow": {"id": self.flow.id, "namespace": self.flow.namespace, "description": self.flow.description},
            "execution": {
                "id": self.run_id,
                "startDate": timestamp(self.started),
                "duration": (now - self.started).total_seconds(),
            },
            "task": {"id": task.id, "type": task.type},
            "taskrun": {
                "id": task_run.id,
                "value": scope.value,
                "iteration": scope.iteration,
                "startDate": task_run.started_at,
                "attemptsCount": task_run.attempts,
            },
            "parent": parents[0] if parents else None,
            "parents": parents,
            "inputs": {},
            "vars": self.flow.variables,
            "labels": self.flow.labels,
            "outputs": self.outputs,
            "tasks": self.task_results,
            "now": _Now(),
        }


def _cancelled() -> ChildResult:
    return ChildResult(State.CANCELLED, error={"type": "Cancelled", "message": "cancelled"})
