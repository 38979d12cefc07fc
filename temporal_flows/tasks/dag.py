"""`dag`: children started when every task they depend on has ended (Kestra's Dag).

Written `tasks: [{task: {...}, dependsOn: [ids]}]`; the dialect stores the relation as the
`depends_on` property (child id → ids) and validation rejects unknown ids and cycles.
"""

from __future__ import annotations

from temporal_flows.model import TaskKind
from temporal_flows.scheduler import Group
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, combine_limits, flowable_properties


def plan(ctx: TaskContext) -> Plan:
    task = ctx.task
    limit = combine_limits(task.properties.get("concurrent"), ctx.scope.limit, ctx.max_workers)
    depends_on = {child: list(needed) for child, needed in task.properties.get("depends_on", {}).items()}
    group = Group.of_tasks(
        task.tasks, depends_on=depends_on, limit=limit, stop_on_failure=True, timeout_s=task.timeout_s, id=task.id
    )
    return Plan(group, children_limit=limit)


TYPE = TaskType(
    "dag",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.Dag",),
    flowable_properties(
        tasks=PropertySpec("dag_tasks", required=True),
        concurrent=PropertySpec("integer", description="0 = unlimited"),
    ),
    "children as a dependency graph",
    plan=plan,
)
