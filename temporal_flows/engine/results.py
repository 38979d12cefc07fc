"""What a task run's result becomes before it is recorded (its allowances, a failed task's
extractor outputs as null), and the results the engine makes itself: cancelled, a template error,
an unexpected error in workflow code."""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError, TemporalError

from temporal_flows.expressions.templates import ExpressionError
from temporal_flows.model.flow import Task
from temporal_flows.model.runs import State
from temporal_flows.tasks.payloads import shorten
from temporal_flows.tasks.plan import ChildResult

PATCH_NULL_EXTRACTIONS = "null-extractions-on-failure"
"""Before it, a failed task's extractor outputs did not exist (a template reading one failed)."""


def settled(task: Task, result: ChildResult) -> ChildResult:
    """The result as the ledger and the task's group see it: `allowFailure`/`allowWarning` applied,
    then a failed task's declared extractor outputs filled in as null."""
    result = _apply_allowances(task, result)
    if result.state is State.FAILED and task.properties.get("output") and workflow.patched(PATCH_NULL_EXTRACTIONS):
        result = _with_null_extractions(task, result)
    return result


def _apply_allowances(task: Task, result: ChildResult) -> ChildResult:
    state, tolerated = result.state, result.tolerated
    if state is State.FAILED and task.allow_failure:
        state, tolerated = State.WARNING, True
    if state is State.WARNING and task.allow_warning:
        state, tolerated = State.SUCCESS, False  # Kestra: allowFailure + allowWarning → SUCCESS
    if state is result.state and tolerated == result.tolerated:
        return result
    return replace(result, state=state, tolerated=tolerated)


def _with_null_extractions(task: Task, result: ChildResult) -> ChildResult:
    """A failed task's declared extractor outputs exist as null, so a dependent that goes on
    (a step's `on_error: continue`, an `errors` task) reads null rather than fails (SPEC §3.1)."""
    names = [item.get("name") for item in task.properties["output"] if isinstance(item, dict) and item.get("name")]
    outputs = result.output if isinstance(result.output, dict) else {}
    return replace(result, output={**dict.fromkeys(names), **outputs})


def expression_failure(error: ExpressionError) -> ChildResult:
    return ChildResult(State.FAILED, error={"type": error.error_type, "message": str(error)})


def cancelled() -> ChildResult:
    return ChildResult(State.CANCELLED, error={"type": "Cancelled", "message": "cancelled"})


def is_sdk_error(error: BaseException) -> bool:
    """The SDK's own signals through workflow code (nondeterminism, a sandbox restriction, a command
    from a query): they must reach the SDK, which fails the workflow task until a fixed worker replays it."""
    return isinstance(error, TemporalError) and not isinstance(error, FailureError)


def unexpected_error(error: Exception) -> dict[str, str]:
    """An exception workflow code did not foresee, as an error record: its type and message."""
    if isinstance(error, ApplicationError):
        return {"type": error.type or "ApplicationError", "message": shorten(error.message)}
    return {"type": type(error).__name__, "message": shorten(str(error) or type(error).__name__)}


def engine_failure(error: Exception, where: str) -> ChildResult:
    """A bug or an unforeseen input in workflow code (a hook, rendering, recording) fails the task
    run with the exception's type and message; without this the workflow task would fail and be
    retried forever, the run stuck. The SDK's own errors are raised again (see `is_sdk_error`)."""
    if is_sdk_error(error):
        raise error
    workflow.logger.warning("unexpected error in %s, which fails", where, exc_info=error)
    return ChildResult(State.FAILED, error=unexpected_error(error))
