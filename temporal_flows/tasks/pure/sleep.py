"""`sleep`: waits `duration` on a durable Temporal timer (it survives worker and server restarts)."""

from __future__ import annotations

from temporalio import workflow

from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.plan import ChildResult


async def evaluate(ctx: TaskContext) -> ChildResult:
    rendered = ctx.render(ctx.task.properties["duration"])
    try:
        seconds = parse_duration(rendered)
    except ValueError as error:
        return ChildResult(State.FAILED, {}, {"type": "InvalidDuration", "message": f"`duration`: {error}"})
    await workflow.sleep(seconds, summary=f"sleep {ctx.task.id}")
    return ChildResult(State.SUCCESS, {})


TYPE = TaskType(
    "sleep",
    TaskKind.PURE,
    ("io.kestra.plugin.core.flow.Sleep",),
    {"duration": PropertySpec("duration", required=True, dynamic=True)},
    "a durable timer",
    evaluate=evaluate,
)
