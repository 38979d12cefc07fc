"""Attempts of one runnable or pure task run: each renders its templates again; a failed one is
tried again while the task's retry allows, after a durable timer (SPEC §3.3)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from activities.api import NOT_RETRIED_ERRORS
from temporal_flows.engine.dispatch import Dispatcher
from temporal_flows.engine.ledger import Ledger
from temporal_flows.engine.results import expression_failure
from temporal_flows.expressions.templates import ExpressionError
from temporal_flows.model.retries import RetryPolicy
from temporal_flows.model.runs import State
from temporal_flows.tasks import TaskType
from temporal_flows.tasks.base import TaskContext
from temporal_flows.tasks.plan import ChildResult


def retry_policy(retry: dict[str, Any] | None) -> RetryPolicy | None:
    """A task's (or flow's) `retry` as a policy; None where it declares none (it inherits one)."""
    return RetryPolicy.from_dict(retry) if retry else None


async def run_attempts(declared: TaskType, context: TaskContext, ledger: Ledger, dispatcher: Dispatcher) -> ChildResult:
    """Attempts of one task run until one does not fail or its retry allows no more; the wait
    between attempts is a durable timer. Each attempt renders its templates again."""
    task, task_run = context.task, context.task_run
    policy = retry_policy(task.retry) or context.scope.retry
    first_started = workflow.now()
    while True:
        try:
            result = await _attempt(declared, context, dispatcher)
        except ExpressionError as error:
            result = expression_failure(error)
        if result.state is not State.FAILED or policy is None or context.cancel_requested or _not_retried(result):
            break
        delay = policy.delay(task_run.attempts, context.random)
        elapsed = (workflow.now() - first_started).total_seconds()
        if not policy.allows_another(task_run.attempts, elapsed, delay):
            break
        if delay > 0:
            await workflow.sleep(delay, summary=f"retry {task.id} in {delay:g} s")
        ledger.new_attempt(task_run)
    if result.state is State.SUCCESS and policy is not None and policy.warning_on_retry and task_run.attempts > 1:
        result = replace(result, state=State.WARNING)
    return result


async def _attempt(declared: TaskType, context: TaskContext, dispatcher: Dispatcher) -> ChildResult:
    if declared.runnable is not None:
        return await dispatcher.run(declared.runnable, context)
    if declared.evaluate is None:
        raise ApplicationError(f"task type `{declared.name}` cannot run yet", non_retryable=True)
    return await declared.evaluate(context)


def _not_retried(result: ChildResult) -> bool:
    """A failure no retry can mend (a Docker task on workers without an engine) ends the task at once."""
    return (result.error or {}).get("type") in NOT_RETRIED_ERRORS
