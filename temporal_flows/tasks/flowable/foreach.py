"""`foreach` and `each_parallel`: the body once per item of `values` (SPEC §3.2).

Items come as a list or as a string that renders to a JSON list; duplicates are removed (Kestra);
a null item fails the task with Kestra's message. Each item's value is text: strings as they are,
anything else as JSON (`taskrun.value`, and the key of `outputs.<id>[<value>]`).
"""

from __future__ import annotations

import json

from temporalio import workflow

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, combine_limits, flowable_properties
from temporal_flows.tasks.plan import Child, ChildResult, Group


ITEM_LIMIT_BYTES = 64 * 1024
"""Longest item value (its text as JSON): every task run of the item keeps it, in the ledger and the history."""
PATCH_BOUNDED_ITEMS = "bounded-foreach-items"
"""Before it, an item of any length was taken."""


class ItemsError(ValueError):
    """The items cannot be iterated; the message is what the task fails with."""


def items(ctx: TaskContext) -> list[str]:
    """The rendered `values`, as the distinct text values to iterate over, in order."""
    raw = ctx.render(ctx.task.properties.get("values"))
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ItemsError(f"`values` must render to a JSON list, got {raw[:200]!r} ({error.msg})") from None
        except RecursionError:
            raise ItemsError(f"`values` nests deeper than Python's JSON reader goes, got {raw[:200]!r}") from None
    if not isinstance(raw, list):
        raise ItemsError(f"`values` must be a list, got {type(raw).__name__}")
    nulls = sum(1 for item in raw if item is None)
    if nulls:
        raise ItemsError(f"Found '{nulls}' null values on Each, with values={json.dumps(raw)}")
    seen: dict[str, None] = {}
    for item in raw:
        text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
        size = len(text) if len(text) <= ITEM_LIMIT_BYTES // 12 else len(json.dumps(text))  # at most 12 bytes a character
        if size > ITEM_LIMIT_BYTES and workflow.patched(PATCH_BOUNDED_ITEMS):
            raise ItemsError(f"an item of `values` is too long ({size:,} bytes as JSON, the limit is {ITEM_LIMIT_BYTES:,}; "
                             "each task run of the item keeps it as `taskrun.value`); iterate over keys or file names")
        seen.setdefault(text, None)
    return list(seen)


def _failed(error: ItemsError) -> Plan:
    return Plan(result=ChildResult(State.FAILED, error={"type": "InvalidValues", "message": str(error)}))


def plan_foreach(ctx: TaskContext) -> Plan:
    """One chain of the body per item; `concurrencyLimit` items at once (default 1, 0 = all)."""
    try:
        values = items(ctx)
    except ItemsError as error:
        return _failed(error)
    task = ctx.task
    per_item = task.properties.get("concurrency_limit", 1)
    children = [
        Child(str(index), body=Group.chain(task.tasks, id=task.id), value=value, iteration=index)
        for index, value in enumerate(values)
    ]
    limit = combine_limits(per_item, ctx.scope.limit, ctx.max_workers)
    group = Group(children, limit=limit, stop_on_failure=True, timeout_s=task.timeout_s, id=task.id)
    # Items one at a time is ordering, not a limit on what each item contains.
    inherited = combine_limits(per_item if per_item > 1 else 0, ctx.scope.limit)
    return Plan(group, children_limit=inherited)


def plan_each_parallel(ctx: TaskContext) -> Plan:
    """Every (item × task) at once, up to `concurrent`."""
    try:
        values = items(ctx)
    except ItemsError as error:
        return _failed(error)
    task = ctx.task
    limit = combine_limits(task.properties.get("concurrent"), ctx.scope.limit, ctx.max_workers)
    children = [
        Child(f"{index}:{child.id}", task=child, value=value, iteration=index)
        for index, value in enumerate(values)
        for child in task.tasks
    ]
    return Plan(Group(children, limit=limit, timeout_s=task.timeout_s, id=task.id), children_limit=limit)


VALUES = PropertySpec("values", required=True, aliases=("value",), description="a list, or a JSON list as text")

FOREACH = TaskType(
    "foreach",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.ForEach", "io.kestra.plugin.core.flow.EachSequential", "io.kestra.core.tasks.flows.EachSequential"),
    flowable_properties(
        values=VALUES,
        tasks=PropertySpec("tasks", required=True),
        concurrency_limit=PropertySpec("integer", default=1, description="items at once; 0 = unlimited"),
    ),
    "the body once per item, items in order",
    plan=plan_foreach,
)

EACH_PARALLEL = TaskType(
    "each_parallel",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.EachParallel", "io.kestra.core.tasks.flows.EachParallel"),
    flowable_properties(
        values=VALUES,
        tasks=PropertySpec("tasks", required=True),
        concurrent=PropertySpec("integer", aliases=("max_workers",), description="0 = unlimited"),
    ),
    "every (item × task) concurrently",
    plan=plan_each_parallel,
)
