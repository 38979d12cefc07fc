"""`allow_failure`: children in order; a failure inside makes the task WARNING (Kestra's AllowFailure)."""

from __future__ import annotations

from dataclasses import replace

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, flowable_properties
from temporal_flows.tasks.plan import ChildResult, Group, GroupResult


def plan(ctx: TaskContext) -> Plan:
    return Plan(Group.chain(ctx.task.tasks, timeout_s=ctx.task.timeout_s, id=ctx.task.id), ctx.scope.limit)


def conclude(ctx: TaskContext, outcome: GroupResult, result: ChildResult) -> ChildResult:
    if result.state is not State.FAILED:
        return result
    return replace(result, state=State.WARNING, tolerated=True)


TYPE = TaskType(
    "allow_failure",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.AllowFailure", "io.kestra.core.tasks.flows.AllowFailure"),
    flowable_properties(tasks=PropertySpec("tasks", required=True)),
    "children in order; a failure inside becomes WARNING",
    plan=plan,
    conclude=conclude,
)
