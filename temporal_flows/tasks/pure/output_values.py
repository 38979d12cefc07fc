"""`output_values`: outputs `values`, every template in them rendered (Kestra's OutputValues)."""

from __future__ import annotations

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.plan import ChildResult


async def evaluate(ctx: TaskContext) -> ChildResult:
    return ChildResult(State.SUCCESS, {"values": ctx.render(ctx.task.properties.get("values", {}))})


TYPE = TaskType(
    "output_values",
    TaskKind.PURE,
    ("io.kestra.plugin.core.output.OutputValues", "io.kestra.core.tasks.outputs.OutputValues"),
    {"values": PropertySpec("mapping", required=True)},
    "outputs the rendered `values`",
    evaluate=evaluate,
)
