"""The page's drawing of a flow, from its resolved graph (`temporal_flows.language.graph`, as `tflow graph`
prints it): a tree of boxes (flowable tasks and their branches) holding tasks, every edge for the
arrows, and in each box the order between its direct children that the page lays out in layers.
"""

from __future__ import annotations

from typing import Any, Optional

from temporal_flows.language.graph import FlowGraph, GraphGroup, GraphNode, build_graph
from temporal_flows.model.flow import Flow


def page_graph(flow: Flow) -> dict[str, Any]:
    """`{"kind": "root", "label", "children": [...], "order": [[a, b]...], "edges": [...]}`; a child is
    `{"id", "kind": "task" | "group" | "branch", "label", "type", "notes"}` (boxes with their own
    `children` and `order`); an edge `{"from", "to", "kind", "inferred", "label"}`."""
    graph = build_graph(flow)
    root = _box_of(graph, None, f"{flow.namespace}.{flow.id}", "root", flow.dialect)
    boxes = {None: root}
    for box in _boxes(root):
        boxes[box["id"]] = box
    _take_order(graph.to_tree(), boxes)
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


def _take_order(tree_box: dict[str, Any], boxes: dict[Optional[str], dict[str, Any]]) -> None:
    """Each box's order between its direct children: the graph's edges as `FlowGraph.to_tree`
    lifts them to the children of the innermost box holding both ends."""
    boxes[tree_box["id"]]["order"] = [[edge["source"], edge["target"]] for edge in tree_box["edges"]]
    for child in tree_box["children"]:
        if "children" in child:
            _take_order(child, boxes)
