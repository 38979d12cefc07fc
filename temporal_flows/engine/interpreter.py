"""Runs tasks inside the workflow: one generic `run_task` for every task, flowables through the
scheduler, runnables as activities, pure tasks evaluated in place. Records everything in the ledger.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, is_dataclass, replace
from datetime import datetime
from typing import Any, Mapping

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

from activities.api import NOT_RETRIED_ERRORS
from activities.wire import to_wire
from temporal_flows.engine.ledger import Ledger
from temporal_flows.engine.pauses import Pauses
from temporal_flows.engine.scheduler import RunChild, SkipChild, run_group
from temporal_flows.engine.worker_render import check_no_stored_values, render_on_worker, task_templates, templates_reading_stored_values
from temporal_flows.expressions.references import contains_reference
from temporal_flows.expressions.templates import PATCH_PEBBLE_TEMPLATES, ExpressionError, render, template_strings
from temporal_flows.metadata import CANCEL_ACK_BOUND, DEFAULT_MAX_PENDING_TASKS, DEFAULT_REDISPATCH_LIMIT, HEARTBEAT_TIMEOUT
from temporal_flows.model.flow import Flow, Task, TaskKind
from temporal_flows.model.retries import RetryPolicy
from temporal_flows.model.runs import State, TaskRun, timestamp, worst
from temporal_flows.tasks import TaskType, task_type
from temporal_flows.tasks.base import Scope, TaskContext
from temporal_flows.tasks.flowable.conditional import is_true
from temporal_flows.tasks.plan import Child, ChildResult, Group, GroupResult
from temporal_flows.tasks.runnable.activity import RunIdentity, RunnableType, activity_options

PATCH_BOUNDED_CANCEL_WAIT = "bounded-cancel-wait"
"""Before it, a cancelled activity was awaited without bound (a durable timer now caps the wait)."""
PATCH_PAUSE_IN_PURE_WORK = "pause-in-pure-work"
"""Before it, pure work never gave the worker back: 10,000 pure tasks in a row tripped the SDK's
deadlock detector (2 s without yielding) and the workflow task failed forever."""
PATCH_NULL_EXTRACTIONS = "null-extractions-on-failure"
"""Before it, a failed task's extractor outputs did not exist (a template reading one failed)."""

PURE_WORK_BATCH = 500
"""Pure and flowable task runs in a row before the workflow pauses on a 1 ms durable timer, so one
workflow task stays well under the deadlock detector's 2 s (counted, never timed: deterministic)."""


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
    def __init__(
        self, flow: Flow, run_id: str, started: datetime, limits: RunLimits, ledger: Ledger, pauses: Pauses | None = None,
        subflows: Mapping[str, dict[str, Any]] | None = None, inputs: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None, trigger: dict[str, Any] | None = None,
    ):
        self.flow = flow
        self.run_id = run_id
        self.started = started
        self.limits = limits
        self.max_workers = limits.max_workers
        self.ledger = ledger
        self.inputs = inputs or {}
        """The run's resolved inputs (`inputs.<id>` in templates)."""
        self.labels = labels if labels is not None else dict(flow.labels)
        """The run's labels: the flow's, overridden by the run's own (`labels.<name>`)."""
        self.pauses = pauses if pauses is not None else Pauses()
        """Task runs waiting for a resume (the workflow's `resume` update wakes them)."""
        self.subflows = subflows or {}
        """Flows the run may call as subflows (`RunRequest.subflows`)."""
        self.trigger = trigger
        """`trigger.*` in templates, for a run a schedule started (no `trigger` otherwise)."""
        self._pending_tasks = asyncio.Semaphore(limits.max_pending_tasks)
        """Activities wait here before their task run opens, so no queued task shows as RUNNING."""
        self.outputs: dict[str, Any] = {}
        """task id → its outputs; inside for-each, nested by item value (`outputs.<id>[<value>]`)."""
        self.task_results: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, list[dict[str, Any]]] = {}
        """task run id → metrics its activity reported, until the task run closes."""
        self._pure_in_a_row = 0
        self._holds_references = contains_reference(self.inputs)
        """Some recorded output is a stored value's reference: templates are checked for reading one."""

    async def run_flow(self) -> GroupResult:
        """The flow's tasks in order, then its `errors` (after a failure) and `finally`."""
        scope = Scope(limit=self.max_workers, retry=_policy(self.flow.retry))
        outcome = await self._run_group_then_finally_if_cancelled(Group.chain(self.flow.tasks), self.flow.finally_tasks, scope)
        if not self.flow.errors and not self.flow.finally_tasks:
            return outcome
        result = ChildResult(outcome.state, error=outcome.error)
        result = await self._errors_and_finally(self.flow.errors, self.flow.finally_tasks, result, scope)
        return GroupResult(result.state, outcome.results, error=result.error)

    def _child_runner(self, scope: Scope) -> RunChild:
        """How a group runs one child in `scope`: a task, or a for-each item's body."""

        async def run_child(child: Child, input: dict[str, Any] | None) -> ChildResult:
            child_scope = scope
            if child.iteration is not None:
                child_scope = replace(scope, values=(*scope.values, child.value), iteration=child.iteration)
            if input is not None:
                child_scope = replace(child_scope, input=input)
            if child.body is not None:
                outcome = await run_group(child.body, self._child_runner(child_scope))
                return ChildResult(outcome.state, outcome.output, outcome.error)
            assert child.task is not None
            return await self.run_task(child.task, child_scope)

        return run_child

    def _child_skipper(self, scope: Scope) -> SkipChild:
        """How a group records a child that will never run (after a failed `on_error: skip` step):
        a SKIPPED task run, as a false `runIf` leaves."""

        def skip_child(child: Child) -> ChildResult:
            result = ChildResult(State.SKIPPED)
            if child.task is None or child.task.disabled:
                return result
            parent = scope.parents[0] if scope.parents else None
            task_run = self.ledger.open(child.task.id, child.task.type, parent, scope.value, scope.iteration)
            self._record(task_type(child.task.type), task_run, scope, result, None)
            return result

        return skip_child

    # -- one task, whatever its kind --------------------------------------------------------

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
        declared = task_type(task.type)
        parent = scope.parents[0] if scope.parents else None
        task_run = self.ledger.open(task.id, task.type, parent, scope.value, scope.iteration)
        rendered_on_worker: dict[str, Any] = {}
        context = self._task_context(task, task_run, scope, rendered_on_worker)
        own_outputs = None
        try:
            unreadable = await self._render_stored_values(context, rendered_on_worker) if self._holds_references else None
            if unreadable is not None:
                result = unreadable
            elif task.run_if is not None and not is_true(context.render(task.run_if)):
                result = ChildResult(State.SKIPPED)
            elif declared.kind is TaskKind.FLOWABLE:
                result, own_outputs = await self._run_flowable(declared, context)
            else:
                result = await self._run_attempts(declared, context)
        except (asyncio.CancelledError, CancelledError):
            result = _cancelled()
        except ExpressionError as error:
            result = _expression_failure(error)
        result = self._apply_allowances(task, result)
        if result.state is State.FAILED and task.properties.get("output") and workflow.patched(PATCH_NULL_EXTRACTIONS):
            result = _with_null_extractions(task, result)
        self._record(declared, task_run, scope, result, own_outputs)
        return result

    @staticmethod
    def _apply_allowances(task: Task, result: ChildResult) -> ChildResult:
        state, tolerated = result.state, result.tolerated
        if state is State.FAILED and task.allow_failure:
            state, tolerated = State.WARNING, True
        if state is State.WARNING and task.allow_warning:
            state, tolerated = State.SUCCESS, False  # Kestra: allowFailure + allowWarning → SUCCESS
        if state is result.state and tolerated == result.tolerated:
            return result
        return replace(result, state=state, tolerated=tolerated)

    def _record(
        self, declared: TaskType, task_run: TaskRun, scope: Scope, result: ChildResult, own: dict[str, Any] | None
    ) -> None:
        """Close the task run and make its outputs visible to later templates.

        A flowable's output (its group's map) is only `tasks.<id>.output`; its Kestra outputs are
        what its type decided (a switch's `value`) and a race's `winner`.
        """
        task_id = task_run.task_id
        outputs = None
        if declared.kind is not TaskKind.FLOWABLE:
            outputs = result.output if isinstance(result.output, dict) else None
        elif own is not None or result.winner is not None:
            outputs = {**(own or {}), **({"winner": result.winner} if result.winner is not None else {})}
        if outputs is not None:
            self._publish(task_id, scope.values, outputs)
            self._holds_references = self._holds_references or contains_reference(outputs)
        metrics = self._metrics.pop(task_run.id, None)
        error = result.error
        if error is not None and result.state is State.FAILED:
            error = {**error, "task_id": error.get("task_id") or task_id}
        self.ledger.close(task_run, result.state, outputs=outputs, error=error, metrics=metrics)
        self.task_results[task_id] = {
            "output": result.output, "state": result.state.value, "error": result.error, "winner": result.winner,
        }

    def _publish(self, task_id: str, values: tuple[Any, ...], outputs: dict[str, Any]) -> None:
        """`outputs.<id>`, or inside for-each `outputs.<id>[<outer value>]...[<value>]`."""
        if not values:
            self.outputs[task_id] = outputs
            return
        node = self.outputs.setdefault(task_id, {})
        for value in values[:-1]:
            node = node.setdefault(value, {})
        node[values[-1]] = outputs

    # -- flowables: the scheduler -----------------------------------------------------------

    async def _run_flowable(self, declared: TaskType, context: TaskContext) -> tuple[ChildResult, dict[str, Any] | None]:
        """The type's plan through the one scheduler, then `errors`/`finally`, then its conclusion."""
        assert declared.plan is not None
        task, scope = context.task, context.scope
        plan = declared.plan(context)
        if inspect.isawaitable(plan):  # a pause waits first
            plan = await plan
        child_scope = Scope(
            (context.task_run, *scope.parents), plan.children_limit, scope.values, scope.iteration,
            retry=_policy(task.retry) or scope.retry,
        )
        errors, final = task.branches.get("errors", []), task.branches.get("finally", [])
        outcome = GroupResult(State.SUCCESS, {})
        if plan.result is not None:
            result = plan.result
        else:
            assert plan.group is not None
            outcome = await self._run_group_then_finally_if_cancelled(plan.group, final, child_scope)
            result = ChildResult(outcome.state, outcome.output, outcome.error, winner=outcome.winner)
        result = await self._errors_and_finally(errors, final, result, child_scope)
        if declared.conclude is not None:
            try:
                result = declared.conclude(context, outcome, result)
            except ExpressionError as error:
                result = _expression_failure(error)
        return result, plan.outputs

    async def _run_group_then_finally_if_cancelled(self, group: Group, final: list[Task], scope: Scope) -> GroupResult:
        """`finally` always runs (SPEC §3.5): also when the scope is cancelled from outside (a
        fail-fast sibling, a race won elsewhere, an enclosing timeout); then the cancellation goes on."""
        try:
            return await run_group(group, self._child_runner(scope), self._child_skipper(scope))
        except (asyncio.CancelledError, CancelledError):
            if final:
                await run_group(Group.chain(final), self._child_runner(scope))
            raise

    async def _errors_and_finally(
        self, errors: list[Task], final: list[Task], result: ChildResult, scope: Scope
    ) -> ChildResult:
        """`errors` run in order after a failure, `finally` always; neither improves the state
        (SPEC §3.5), and a failure in either fails the scope."""
        states, error = [result.group_state], result.error
        for tasks, runs in ((errors, result.state is State.FAILED), (final, True)):
            if not tasks or not runs:
                continue
            outcome = await run_group(Group.chain(tasks), self._child_runner(scope))
            states.append(State.FAILED if outcome.state is State.CANCELLED else outcome.state)
            error = error or outcome.error
        if len(states) == 1:
            return result
        state = worst(states)
        if state is result.group_state:
            return result
        return replace(result, state=state, error=error, handled=False, tolerated=False)

    # -- runnables and pure tasks: attempts ---------------------------------------------------

    async def _run_attempts(self, declared: TaskType, context: TaskContext) -> ChildResult:
        """Attempts of one task run until one does not fail or its retry allows no more; the wait
        between attempts is a durable timer. Each attempt renders its templates again."""
        task, task_run = context.task, context.task_run
        policy = _policy(task.retry) or context.scope.retry
        first_started = workflow.now()
        while True:
            try:
                result = await self._attempt(declared, context)
            except ExpressionError as error:
                result = _expression_failure(error)
            if result.state is not State.FAILED or policy is None or context.cancel_requested or _not_retried(result):
                break
            delay = policy.delay(task_run.attempts, context.random)
            elapsed = (workflow.now() - first_started).total_seconds()
            if not policy.allows_another(task_run.attempts, elapsed, delay):
                break
            if delay > 0:
                await workflow.sleep(delay, summary=f"retry {task.id} in {delay:g} s")
            self.ledger.new_attempt(task_run)
        if result.state is State.SUCCESS and policy is not None and policy.warning_on_retry and task_run.attempts > 1:
            result = replace(result, state=State.WARNING)
        return result

    async def _attempt(self, declared: TaskType, context: TaskContext) -> ChildResult:
        if declared.runnable is not None:
            return await self._run_activity(declared.runnable, context)
        if declared.evaluate is None:
            raise ApplicationError(f"task type `{declared.name}` cannot run yet", non_retryable=True)
        return await declared.evaluate(context)

    async def _run_activity(self, runnable: RunnableType, context: TaskContext) -> ChildResult:
        task, task_run, scope = context.task, context.task_run, context.scope
        props = context.render(task.properties)
        if self._holds_references:
            check_no_stored_values(props)
        call = runnable.build(task, props, RunIdentity(self.run_id, task_run.id))
        summary = task.id if scope.value is None else f"{task.id} [{scope.value}]"
        options = activity_options(task, summary, self.limits.redispatch_limit)
        request = to_wire(call.request) if is_dataclass(call.request) else call.request  # same JSON, no deep copy
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

    # -- expressions ------------------------------------------------------------------------

    async def _render_stored_values(self, context: TaskContext, rendered: dict[str, Any]) -> ChildResult | None:
        """Templates of the task that read stored values, rendered by a worker into `rendered`
        (the task's renders use them); the task's failure if a reference cannot be read."""
        task, task_run = context.task, context.task_run
        templates = templates_reading_stored_values(task_templates(task), context.render)
        if not templates:
            return None
        pebble = workflow.patched(PATCH_PEBBLE_TEMPLATES)
        found = await render_on_worker(
            task.id, self.run_id, task_run.id, templates, self._context(task, task_run, context.scope), pebble,
            self.limits.redispatch_limit,
        )
        if isinstance(found, ChildResult):
            return found
        rendered.update(found)
        return None

    async def flow_templates_on_worker(self, value: Any) -> tuple[dict[str, Any], str | None]:
        """Templates in `value` (the flow's `outputs`) that read stored values, rendered by a worker:
        (template → rendered, None), or ({}, why a reference could not be read)."""
        if not self._holds_references:
            return {}, None
        context = self.flow_context()
        templates = templates_reading_stored_values(template_strings(value), lambda template: render(template, context))
        if not templates:
            return {}, None
        found = await render_on_worker(
            "the flow's outputs", self.run_id, "flow-outputs", templates, context, True, self.limits.redispatch_limit,
        )
        if isinstance(found, ChildResult):
            return {}, (found.error or {}).get("message", "cannot render")
        return found, None

    def _task_context(self, task: Task, task_run: TaskRun, scope: Scope, rendered: dict[str, Any] | None = None) -> TaskContext:
        def render_with(value: Any, extra: dict[str, Any] | None = None) -> Any:
            context = self._context(task, task_run, scope)
            pebble = workflow.patched(PATCH_PEBBLE_TEMPLATES)
            if not pebble:
                context.pop("flows", None)  # a run started before Pebble forms renders as it did
            if extra:
                return render(value, {**context, **extra}, pebble)
            return render(value, context, pebble, rendered)

        return TaskContext(
            task, task_run, scope, self.max_workers, render_with, lambda: workflow.random().random(), pauses=self.pauses,
            labels=self.labels, subflows=self.subflows,
        )

    def flow_context(self) -> dict[str, Any]:
        """What templates see outside any task (the flow's `outputs` render with it when the run ends)."""
        context = {
            "flow": {"id": self.flow.id, "namespace": self.flow.namespace, "description": self.flow.description},
            "execution": {
                "id": self.run_id,
                "startDate": timestamp(self.started),
                "duration": (workflow.now() - self.started).total_seconds(),
            },
            "inputs": self.inputs,
            "vars": self.flow.variables,
            "labels": self.labels,
            "outputs": self.outputs,
            "flows": self.outputs,  # step flows name earlier outputs `flows.<step>.<output>` (SPEC §3.6)
            "tasks": self.task_results,
            "now": _Now(),
        }
        if self.trigger is not None:
            context["trigger"] = self.trigger
        return context

    def _context(self, task: Task, task_run: TaskRun, scope: Scope) -> dict[str, Any]:
        parents = [
            {"taskrun": {"id": parent.id, "value": parent.value}, "task": {"id": parent.task_id}}
            for parent in scope.parents
        ]
        return {
            **self.flow_context(),
            "task": {"id": task.id, "type": task.type},
            "taskrun": {
                "id": task_run.id,
                "value": scope.value,
                "iteration": scope.iteration,
                "startDate": task_run.started_at,
                "attemptsCount": task_run.attempts - 1,
            },
            "parent": parents[0] if parents else None,
            "parents": parents,
            "input": scope.input or {},
            "currentEachOutput": lambda outputs: _current_each_output(outputs, scope.values),
        }


def _current_each_output(outputs: Any, values: tuple[Any, ...]) -> Any:
    """Kestra's `currentEachOutput(outputs.x)`: x's outputs for the items being run now."""
    for value in values:
        if not isinstance(outputs, dict) or value not in outputs:
            break
        outputs = outputs[value]
    return outputs


def _policy(retry: dict[str, Any] | None) -> RetryPolicy | None:
    return RetryPolicy.from_dict(retry) if retry else None


def _not_retried(result: ChildResult) -> bool:
    """A failure no retry can mend (a Docker task on workers without an engine) ends the task at once."""
    return (result.error or {}).get("type") in NOT_RETRIED_ERRORS


def _with_null_extractions(task: Task, result: ChildResult) -> ChildResult:
    """A failed task's declared extractor outputs exist as null, so a dependent that goes on
    (a step's `on_error: continue`, an `errors` task) reads null rather than fails (SPEC §3.1)."""
    names = [item.get("name") for item in task.properties["output"] if isinstance(item, dict) and item.get("name")]
    outputs = result.output if isinstance(result.output, dict) else {}
    return replace(result, output={**dict.fromkeys(names), **outputs})


def _expression_failure(error: ExpressionError) -> ChildResult:
    return ChildResult(State.FAILED, error={"type": "ExpressionError", "message": str(error)})


def _cancelled() -> ChildResult:
    return ChildResult(State.CANCELLED, error={"type": "Cancelled", "message": "cancelled"})
