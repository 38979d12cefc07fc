"""`sequential`: children in order; ordering is not a concurrency limit for what they contain."""

from __future__ import annotations

from temporalio import workflow

from temporal_flows.model.flow import TaskKind
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, flowable_properties
from temporal_flows.tasks.plan import Group


PATCH_ORDERING_IS_NOT_A_LIMIT = "ordering-is-not-a-limit"
"""Before it, a group inside a `sequential` inherited the chain's limit of 1 as its own cap."""


def plan(ctx: TaskContext) -> Plan:
    inherited = ctx.scope.limit if workflow.patched(PATCH_ORDERING_IS_NOT_A_LIMIT) else 1
    return Plan(Group.chain(ctx.task.tasks, timeout_s=ctx.task.timeout_s, id=ctx.task.id), inherited)


TYPE = TaskType(
    "sequential",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential"),
    flowable_properties(tasks=PropertySpec("tasks", required=True)),
    "children in order",
    plan=plan,
)
