"""Groups of tasks through the one scheduler: each child in its scope (a task, or a for-each
item's body), a flowable's plan and conclusion, and the `errors` and `finally` around a group."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import replace
from typing import Any, Awaitable, Callable, TypeVar

from temporalio.exceptions import CancelledError

from temporal_flows.engine.attempts import retry_policy
from temporal_flows.engine.recording import Recorder
from temporal_flows.engine.results import expression_failure
from temporal_flows.engine.scheduler import RunChild, SkipChild, run_group
from temporal_flows.expressions.templates import ExpressionError
from temporal_flows.model.flow import Task
from temporal_flows.model.runs import State, worst
from temporal_flows.tasks import TaskType, task_type
from temporal_flows.tasks.base import Plan, Scope, TaskContext
from temporal_flows.tasks.plan import Child, ChildResult, Group, GroupResult

_T = TypeVar("_T")

RunTask = Callable[[Task, Scope], Awaitable[ChildResult]]
"""How one task runs in a scope, whatever its kind (the interpreter's `run_task`)."""


class GroupRunner:
    """Runs groups whose tasks `run_task` runs; records the children a group skips."""

    def __init__(self, run_task: RunTask, recorder: Recorder):
        self._run_task = run_task
        self._recorder = recorder

    async def run_flowable(self, declared: TaskType, context: TaskContext) -> tuple[ChildResult, dict[str, Any] | None]:
        """The type's plan through the one scheduler, then `errors`/`finally`, then its conclusion."""
        assert declared.plan is not None
        task = context.task
        plan = declared.plan(context)
        if inspect.isawaitable(plan):  # a pause waits first
            plan = await plan
        errors, final = task.branches.get("errors", []), task.branches.get("finally", [])
        outcome = GroupResult(State.SUCCESS, {})
        if plan.result is None:
            plan, outcome = await self._run_plan(plan, context, final)
        if plan.result is not None:
            result = plan.result
        else:
            result = ChildResult(outcome.state, outcome.output, outcome.error, winner=outcome.winner)
        result = await self.errors_and_finally(errors, final, result, self._child_scope(context, plan))
        if declared.conclude is not None:
            try:
                result = declared.conclude(context, outcome, result)
            except ExpressionError as error:
                result = expression_failure(error)
        return result, plan.outputs

    async def _run_plan(self, plan: Plan, context: TaskContext, final: list[Task]) -> tuple[Plan, GroupResult]:
        """The plan's group; a loop's (`Plan.repeat`) again for each plan its outcome leads to, until
        one decides the result. Its last plan and outcome."""
        while True:
            assert plan.group is not None
            scope = self._child_scope(context, plan)
            if plan.repeat is not None and plan.outputs is not None:  # `outputs.<loop>.iterationCount` inside
                self._recorder._publish(context.task.id, context.scope.values, plan.outputs)
            outcome = await self.run_then_finally_if_cancelled(plan.group, final, scope)
            if plan.repeat is None:
                return plan, outcome
            plan = await self._finally_if_cancelled(plan.repeat(outcome), final, scope)
            if plan.result is not None:
                return plan, outcome

    @staticmethod
    def _child_scope(context: TaskContext, plan: Plan) -> Scope:
        """Where the flowable's children run: under its task run, with its plan's limit (and iteration)."""
        scope = context.scope
        return Scope(
            (context.task_run, *scope.parents), plan.children_limit, scope.values,
            scope.iteration if plan.iteration is None else plan.iteration,
            retry=retry_policy(context.task.retry) or scope.retry,
        )

    async def run_then_finally_if_cancelled(self, group: Group, final: list[Task], scope: Scope) -> GroupResult:
        """`finally` always runs (SPEC §3.5): also when the scope is cancelled from outside (a
        fail-fast sibling, a race won elsewhere, an enclosing timeout); then the cancellation goes on."""
        return await self._finally_if_cancelled(
            run_group(group, self._child_runner(scope), self._child_skipper(scope)), final, scope,
        )

    async def _finally_if_cancelled(self, work: Awaitable[_T], final: list[Task], scope: Scope) -> _T:
        """`work`'s answer; cancelled, `finally` runs before the cancellation goes on (a loop's wait too)."""
        try:
            return await work
        except (asyncio.CancelledError, CancelledError):
            if final:
                await run_group(Group.chain(final), self._child_runner(scope))
            raise

    async def errors_and_finally(
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
            return await self._run_task(child.task, child_scope)

        return run_child

    def _child_skipper(self, scope: Scope) -> SkipChild:
        """How a group records a child that will never run (after a failed `on_error: skip` step):
        a SKIPPED task run, as a false `runIf` leaves."""

        def skip_child(child: Child) -> ChildResult:
            result = ChildResult(State.SKIPPED)
            if child.task is None or child.task.disabled:
                return result
            task_run = self._recorder.open(child.task, scope)
            self._recorder.record(task_type(child.task.type), task_run, scope, result, None)
            return result

        return skip_child
