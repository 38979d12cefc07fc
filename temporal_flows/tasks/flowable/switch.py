"""`switch`: the tasks of the case matching the rendered `value`, else `defaults`; else FAILED."""

from __future__ import annotations

from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, flowable_properties
from temporal_flows.tasks.plan import ChildResult, Group

CASE_PREFIX = "case "
"""A case's tasks are the branch `case <key>` (the dialect stores them so)."""


def plan(ctx: TaskContext) -> Plan:
    task = ctx.task
    value = ctx.render(task.properties["value"])
    value = value if isinstance(value, str) else str(value)
    chosen: list[Task] | None = task.branches.get(CASE_PREFIX + value)
    defaults = chosen is None
    if defaults:
        chosen = task.branches.get("defaults")
    outputs = {"value": value, "defaults": defaults}
    if chosen is None:
        message = f"no case matches the value {value!r} and there are no `defaults`"
        return Plan(outputs=outputs, result=ChildResult(State.FAILED, error={"type": "NoMatchingCase", "message": message}))
    return Plan(Group.chain(chosen, timeout_s=task.timeout_s, id=task.id), ctx.scope.limit, outputs=outputs)


TYPE = TaskType(
    "switch",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch"),
    flowable_properties(
        value=PropertySpec("any", required=True),
        cases=PropertySpec("task_cases"),
        defaults=PropertySpec("tasks"),
    ),
    "the tasks of the matching case",
    plan=plan,
)
