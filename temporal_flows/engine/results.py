"""What a task run's result becomes before it is recorded (its allowances, a failed task's
extractor outputs as null), and the results the engine makes itself: cancelled, a template error."""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow

from temporal_flows.expressions.templates import ExpressionError
from temporal_flows.model.flow import Task
from temporal_flows.model.runs import State
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
