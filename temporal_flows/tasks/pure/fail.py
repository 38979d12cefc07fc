"""`fail`: fails the task (when its optional `condition` renders true) with `errorMessage`."""

from __future__ import annotations

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.flowable.conditional import is_true
from temporal_flows.tasks.plan import ChildResult

DEFAULT_MESSAGE = "Task failure"
"""Kestra's Fail message when none is given."""


async def evaluate(ctx: TaskContext) -> ChildResult:
    props = ctx.task.properties
    if "condition" in props and not is_true(ctx.render(props["condition"])):
        return ChildResult(State.SUCCESS, {})
    message = ctx.render(props.get("error_message", DEFAULT_MESSAGE))
    return ChildResult(State.FAILED, {}, {"type": "Fail", "message": str(message)})


TYPE = TaskType(
    "fail",
    TaskKind.PURE,
    ("io.kestra.plugin.core.execution.Fail", "io.kestra.core.tasks.executions.Fail"),
    {"condition": PropertySpec("any"), "error_message": PropertySpec("string")},
    "fails, when `condition` (if given) is true",
    evaluate=evaluate,
)
