"""The page's drawing of a flow: a tree of boxes (flowable tasks and their branches) holding tasks,
with each box's dependency arrows between its direct children.

The page lays the tree out itself (layers by dependency depth inside each box), so this only says
what is inside what and what waits for what.
"""

from __future__ import annotations

from typing import Any

from temporal_flows.model import Flow, Task

UNORDERED_TYPES = frozenset({"parallel", "each_parallel"})
"""Flowable types whose children start together: no arrows between them."""
DAG_TYPE = "dag"


def page_graph(flow: Flow) -> dict[str, Any]:
    """The flow as the page draws it: a root box of its tasks (run in order), then its `errors` and
    `finally` tasks as boxes reached by dashed arrows."""
    children = [_item(task) for task in flow.tasks]
    edges = _chain(flow.tasks)
    last = flow.tasks[-1].id if flow.tasks else None
    for name, tasks in (("errors", flow.errors), ("finally", flow.finally_tasks)):
        if tasks:
            box = _box(f"{flow.id}:{name}", name, tasks, _chain(tasks))
            children.append(box)
            if last:
                edges.append(_edge(last, box["id"], kind="branch"))
    return {"id": flow.id, "kind": "root", "label": f"{flow.namespace}.{flow.id}", "type": flow.dialect,
            "children": children, "edges": edges}


def _item(task: Task) -> dict[str, Any]:
    if not task.tasks and not task.branches:
        return {"id": task.id, "kind": "task", "label": task.id, "type": task.type, "description": task.description}
    children = [_item(child) for child in task.tasks]
    edges = _edges_between(task)
    for name, branch in task.branches.items():
        children.append(_box(f"{task.id}:{name}", name, branch, _chain(branch)))
    return {"id": task.id, "kind": "group", "label": task.id, "type": task.type, "description": task.description,
            "children": children, "edges": edges}


def _box(box_id: str, label: str, tasks: list[Task], edges: list[dict[str, Any]]) -> dict[str, Any]:
    """A branch (then/else, a case, errors, finally): a box without a task run of its own."""
    return {"id": box_id, "kind": "branch", "label": label, "type": None,
            "children": [_item(task) for task in tasks], "edges": edges}


def _edges_between(task: Task) -> list[dict[str, Any]]:
    if task.type in UNORDERED_TYPES:
        return []
    if task.type == DAG_TYPE:
        depends_on = task.properties.get("depends_on") or {}
        return [_edge(needed, child, inferred=False) for child, needs in depends_on.items() for needed in needs]
    return _chain(task.tasks)


def _chain(tasks: list[Task]) -> list[dict[str, Any]]:
    return [_edge(before.id, after.id) for before, after in zip(tasks, tasks[1:])]


def _edge(source: str, target: str, *, inferred: bool = False, kind: str = "depends") -> dict[str, Any]:
    return {"from": source, "to": target, "inferred": inferred, "kind": kind}
