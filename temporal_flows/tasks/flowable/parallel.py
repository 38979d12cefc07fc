"""`parallel`: children at once under a strategy (SPEC §3.4), with `on_success`/`on_error` handlers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.model.flow import Strategy
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, combine_limits, flowable_properties
from temporal_flows.tasks.plan import ChildResult, Group, GroupResult, Jump

STRATEGIES = (Strategy.WAIT_ALL, Strategy.FAIL_FAST, Strategy.BEST_EFFORT, Strategy.RACE)


def plan(ctx: TaskContext) -> Plan:
    task, props = ctx.task, ctx.task.properties
    limit = combine_limits(props.get("concurrent"), ctx.scope.limit, ctx.max_workers)
    group = Group.of_tasks(
        task.tasks,
        limit=limit,
        strategy=props.get("strategy", Strategy.WAIT_ALL),
        min_success=props.get("min_success", 1),
        timeout_s=task.timeout_s,
        id=task.id,
    )
    return Plan(group, children_limit=limit)


def conclude(ctx: TaskContext, outcome: GroupResult, result: ChildResult) -> ChildResult:
    """Run the handler the outcome calls for: render its `with` in the handler context and jump
    to its `next`. A handled failure stays FAILED in the ledger and is WARNING to its group."""
    if result.state is State.CANCELLED:
        return result
    failed = result.state is State.FAILED
    handler = ctx.task.properties.get("on_error" if failed else "on_success")
    if not handler:
        return result
    values = ctx.render(handler.get("with") or {}, handler_context(outcome, result))
    jump = Jump(handler["next"], values) if handler.get("next") else None
    return replace(result, handled=failed, jump=jump)


def handler_context(outcome: GroupResult, result: ChildResult) -> dict[str, Any]:
    """`output`, `results`, `summary`, `winner`, `error`, `failed_tasks` (SPEC §3.4)."""
    summary: dict[str, int] = {}
    for child in outcome.results.values():
        summary[child.state.value] = summary.get(child.state.value, 0) + 1
    return {
        "output": outcome.output,
        "results": {
            key: {"state": child.state.value, "output": child.output, "error": child.error}
            for key, child in outcome.results.items()
        },
        "summary": summary,
        "winner": outcome.winner,
        "error": result.error,
        "failed_tasks": [
            {"id": key, "error": child.error} for key, child in outcome.results.items() if child.state is State.FAILED
        ],
    }


def default_properties(task: Task, written_type: str) -> None:
    """Kestra's Parallel stops on the first failure (`onChildFailure: FAIL`); the `parallel` spec
    waits for all. An explicit `strategy` always wins."""
    if "strategy" in task.properties:
        return
    kestra = written_type != "parallel" and task.properties.get("on_child_failure", "FAIL") == "FAIL"
    task.properties["strategy"] = Strategy.FAIL_FAST if kestra else Strategy.WAIT_ALL


TYPE = TaskType(
    "parallel",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel"),
    flowable_properties(
        tasks=PropertySpec("tasks", required=True),
        concurrent=PropertySpec("integer", aliases=("max_workers",), description="0 = unlimited"),
        strategy=PropertySpec("choice", choices=STRATEGIES),
        on_child_failure=PropertySpec("choice", choices=("FAIL", "CONTINUE")),
        min_success=PropertySpec("integer", minimum=1),
        on_success=PropertySpec("handler"),
        on_error=PropertySpec("handler"),
    ),
    "children concurrently under a strategy",
    plan=plan,
    conclude=conclude,
    default_properties=default_properties,
)
