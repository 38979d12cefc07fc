"""`dag`: children started when every task they depend on has ended (Kestra's Dag).

Written `tasks: [{task: {...}, dependsOn: [ids]}]`; the dialect stores the relation as the
`depends_on` property (child id → ids) and validation rejects unknown ids and cycles.
A step flow (SPEC §3.1) is one dag too: its steps' `on_error` become `on_failure` (child id →
`skip`/`continue`) and its `fail` default the `fail_fast` strategy (a failure cancels running steps).
"""

from __future__ import annotations

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.flow import OnFailure, Strategy
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, combine_limits, flowable_properties
from temporal_flows.tasks.plan import Group


def plan(ctx: TaskContext) -> Plan:
    task = ctx.task
    limit = combine_limits(task.properties.get("concurrent"), ctx.scope.limit, ctx.max_workers)
    depends_on = {child: list(needed) for child, needed in task.properties.get("depends_on", {}).items()}
    group = Group.of_tasks(
        task.tasks, depends_on=depends_on, limit=limit, stop_on_failure=True, timeout_s=task.timeout_s, id=task.id,
        strategy=task.properties.get("strategy") or Strategy.WAIT_ALL,
        on_failure=dict(task.properties.get("on_failure") or {}),
    )
    return Plan(group, children_limit=limit)


def _on_failure_problem(value: dict) -> str | None:
    bad = [key for key, policy in value.items() if policy not in (OnFailure.SKIP, OnFailure.CONTINUE)]
    return f"`{bad[0]}`: expected `{OnFailure.SKIP}` or `{OnFailure.CONTINUE}`" if bad else None


TYPE = TaskType(
    "dag",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag"),
    flowable_properties(
        tasks=PropertySpec("dag_tasks", required=True),
        concurrent=PropertySpec("integer", description="0 = unlimited"),
        strategy=PropertySpec(
            "choice", choices=(Strategy.WAIT_ALL, Strategy.FAIL_FAST),
            description="on a failure: wait_all lets running children finish (Kestra), fail_fast cancels them",
        ),
        on_failure=PropertySpec(
            "mapping", check=_on_failure_problem,
            description=f"child id → {OnFailure.SKIP} (its dependents are SKIPPED) | {OnFailure.CONTINUE} (they run)",
        ),
    ),
    "children as a dependency graph",
    plan=plan,
)
