"""`if`: `then` when the rendered `condition` is true, else `else` (SPEC §3.2)."""

from __future__ import annotations

from typing import Any

from temporal_flows.model.flow import TaskKind
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, flowable_properties
from temporal_flows.tasks.plan import Group

FALSY = ("", "false", "0", "-0", "none", "null")
"""Rendered values that count as false (case-insensitive); everything else is true."""


def is_true(value: Any) -> bool:
    if value is None or value is False:
        return False
    return str(value).strip().lower() not in FALSY


def plan(ctx: TaskContext) -> Plan:
    task = ctx.task
    branch = "then" if is_true(ctx.render(task.properties["condition"])) else "else"
    chosen = task.branches.get(branch, [])
    return Plan(Group.chain(chosen, timeout_s=task.timeout_s, id=task.id), ctx.scope.limit)


TYPE = TaskType(
    "if",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If"),
    flowable_properties(
        condition=PropertySpec("any", required=True),
        then=PropertySpec("tasks", required=True),
        **{"else": PropertySpec("tasks")},
    ),
    "`then` or `else` by a condition",
    plan=plan,
)
