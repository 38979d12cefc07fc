"""The page's drawing of a flow, from its resolved graph (`temporal_flows.graph`, as `tflow graph`
prints it): a tree of boxes (flowable tasks and their branches) holding tasks, every edge for the
arrows, and in each box the order between its direct children that the page lays out in layers.
"""

from __future__ import annotations

from typing import Any, Optional

from temporal_flows.graph import FlowGraph, GraphGroup, GraphNode, build_graph
from temporal_flows.model import Flow


def page_graph(flow: Flow) -> dict[str, Any]:
    """`{"kind": "root", "label", "children": [...], "order": [[a, b]...], "edges": [...]}`; a child is
    `{"id", "kind": "task" | "group" | "branch", "label", "type", "notes"}` (boxes with their own
    `children` and `order`); an edge `{"from", "to", "kind", "inferred", "label"}`."""
    graph = build_graph(flow)
    parents = {node.id: node.group for node in graph.nodes} | {group.id: group.parent for group in graph.groups}
    root = _box_of(graph, None, f"{flow.namespace}.{flow.id}", "root", flow.dialect)
    boxes = {None: root}
    for box in _boxes(root):
        boxes[box["id"]] = box
    for edge in graph.edges:
        lifted = _siblings(parents, edge.source, edge.target)
        if lifted is not None:
            owner, before, after = lifted
            boxes[owner]["order"].append([before, after])
    root["edges"] = [{"from": edge.source, "to": edge.target, "kind": edge.kind, "inferred": edge.inferred,
                      "label": edge.label} for edge in graph.edges]
    return root


def _box_of(graph: FlowGraph, group_id: Optional[str], label: str, kind: str, type_name: Optional[str]) -> dict[str, Any]:
    return {"id": group_id, "kind": kind, "label": label, "type": type_name, "order": [],
            "children": [_item(graph, member) for member in graph.children(group_id)]}


def _item(graph: FlowGraph, member: GraphNode | GraphGroup) -> dict[str, Any]:
    if isinstance(member, GraphNode):
        return {"id": member.id, "kind": "task", "label": member.label, "type": member.type, "notes": member.notes}
    if member.task_id is not None:  # a flowable task: a box with a state of its own
        return _box_of(graph, member.id, member.task_id, "group", member.type)
    return _box_of(graph, member.id, member.label, "branch", None)


def _boxes(box: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for child in box["children"]:
        if child["kind"] != "task":
            found += [child, *_boxes(child)]
    return found


def _siblings(parents: dict[str, Optional[str]], source: str, target: str) -> Optional[tuple[Optional[str], str, str]]:
    """The edge seen in the innermost box holding both ends: (that box, the child of it holding
    the source, the child holding the target); None when one end holds the other."""
    source_chain, target_chain = _chain(parents, source), _chain(parents, target)
    for index, owner in enumerate(source_chain[1:], start=1):
        if owner in target_chain:
            position = target_chain.index(owner)
            before, after = source_chain[index - 1], target_chain[position - 1]
            return None if position == 0 or before == after else (owner, before, after)
    return None


def _chain(parents: dict[str, Optional[str]], item: str) -> list[Optional[str]]:
    """The item, its box, that box's box ... up to None (the flow's top level)."""
    chain: list[Optional[str]] = [item]
    while chain[-1] is not None:
        chain.append(parents.get(chain[-1]))
    return chain
