"""`return`: output `value` = the rendered `format` (Kestra's debug Return)."""

from __future__ import annotations

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.plan import ChildResult


async def evaluate(ctx: TaskContext) -> ChildResult:
    return ChildResult(State.SUCCESS, {"value": ctx.render(ctx.task.properties.get("format", ""))})


TYPE = TaskType(
    "return",
    TaskKind.PURE,
    ("io.kestra.plugin.core.debug.Return", "io.kestra.core.tasks.debugs.Return"),
    {"format": PropertySpec("string", aliases=("return",), description="`return` when written as a `basic` task")},
    "outputs `value`, the rendered `format`",
    evaluate=evaluate,
)
