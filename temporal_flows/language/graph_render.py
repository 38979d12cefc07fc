"""A `FlowGraph` as text for a terminal, a Mermaid flowchart, or a Graphviz digraph (`tflow graph`).

Task ids may hold `.`, `-` and other characters ids of these languages do not take: Mermaid gets
generated safe ids with the task id as label; Graphviz gets every id quoted.
"""

from __future__ import annotations

import re
import textwrap
from typing import Callable

from temporal_flows.language.graph import FLOW_SCOPE, FlowGraph, GraphEdge, GraphGroup, GraphNode

WIDTH = 80
"""The text view keeps to a terminal's 80 columns."""

FLOW_HANDLER_GROUPS = (f"{FLOW_SCOPE}/errors", f"{FLOW_SCOPE}/finally")

_TEXT_LABELS = {
    "order": "after",
    "depends_on": "after",
    "inferred": "inferred after",
    "errors": "on failure of",
    "finally": "finally after",
    "on_success": "on success of",
    "on_error": "on error of",
}
"""How the text view names the edges into a task, in this order."""


def render_text(graph: FlowGraph) -> str:
    """An indented tree, one line per task or group, with what each waits for (`after: ...`)."""
    lines = [f"flow {graph.flow_id} (namespace {graph.namespace}, {graph.dialect} dialect)"]
    if graph.file:
        lines.append(f"file {graph.file}")
    lines.append("")
    _text_members(graph, None, 0, lines)
    inferred = sum(edge.inferred for edge in graph.edges)
    lines.append("")
    counts = [_count(len(graph.nodes), "task"), _count(len(graph.groups), "group"), _count(len(graph.edges), "edge")]
    lines.append(f"{', '.join(counts)} ({inferred} inferred)")
    return "\n".join(lines) + "\n"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _text_members(graph: FlowGraph, group_id: str | None, depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    for member in graph.children(group_id):
        if isinstance(member, GraphGroup):
            head = f"{indent}[{member.label}]"
        else:
            extra = f" ({'; '.join(member.notes)})" if member.notes else ""
            head = f"{indent}{member.id}  {member.type}{extra}"
        edges = graph.edges_into(member.id)
        if group_id in FLOW_HANDLER_GROUPS:  # the flow's errors/finally follow all its tasks
            edges = [GraphEdge("the flow", edge.target, edge.kind) if edge.kind in ("errors", "finally") else edge for edge in edges]
        _text_line(head, _text_waits(edges), indent + "    ", lines)
        if isinstance(member, GraphGroup):
            _text_members(graph, member.id, depth + 1, lines)


def _text_waits(edges: list[GraphEdge]) -> str:
    """`after: a, b  inferred after: c` for the edges into one task or group."""
    parts = []
    for kind, label in _TEXT_LABELS.items():
        sources = [edge.source for edge in edges if edge.kind == kind]
        if sources and not (kind == "depends_on" and any(edge.kind == "order" for edge in edges)):
            parts.append(f"{label}: {', '.join(sources)}")
    merged: dict[str, list[str]] = {}
    for part in parts:  # order and depends_on share "after"
        label, _, names = part.partition(": ")
        merged.setdefault(label, []).append(names)
    return "  ".join(f"{label}: {', '.join(names)}" for label, names in merged.items())


def _text_line(head: str, waits: str, continuation: str, lines: list[str]) -> None:
    """`head  waits` on one line when it fits in 80 columns, else the waits wrapped below."""
    if not waits:
        lines.append(head)
    elif len(head) + 2 + len(waits) <= WIDTH:
        lines.append(f"{head}  {waits}")
    else:
        lines.append(head)
        lines.extend(textwrap.wrap(waits, WIDTH, initial_indent=continuation, subsequent_indent=continuation + "  "))


def render_mermaid(graph: FlowGraph) -> str:
    """`flowchart TD`: groups as subgraphs, inferred edges dashed (`-.->`)."""
    ids = _MermaidIds()
    lines = ["flowchart TD"]
    _mermaid_members(graph, None, 1, ids, lines)
    for edge in graph.edges:
        source, target = ids.of(edge.source), ids.of(edge.target)
        arrow = "-.->" if edge.inferred else "-->"
        label = "inferred" if edge.inferred else edge.label
        lines.append(f"  {source} {arrow}|{_mermaid_text(label)}| {target}" if label else f"  {source} {arrow} {target}")
    return "\n".join(lines) + "\n"


def _mermaid_members(graph: FlowGraph, group_id: str | None, depth: int, ids: _MermaidIds, lines: list[str]) -> None:
    indent = "  " * depth
    for member in graph.children(group_id):
        if isinstance(member, GraphGroup):
            lines.append(f'{indent}subgraph {ids.of(member.id, "g")} ["{_mermaid_text(member.label)}"]')
            _mermaid_members(graph, member.id, depth + 1, ids, lines)
            lines.append(f"{indent}end")
        else:
            label = "<br/>".join(_mermaid_text(part) for part in _node_label(member).split("\n"))
            lines.append(f'{indent}{ids.of(member.id, "t")}["{label}"]')


class _MermaidIds:
    """Safe, readable, unique Mermaid ids (`t_fetch_users`, `g_parent`) for graph ids."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def of(self, graph_id: str, prefix: str = "t") -> str:
        if graph_id not in self.ids:
            base = f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', graph_id)}"
            safe, count = base, 1
            while safe in self.ids.values():
                count += 1
                safe = f"{base}_{count}"
            self.ids[graph_id] = safe
        return self.ids[graph_id]


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup characters as entity codes."""
    for character, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(character, code)
    return text


def render_dot(graph: FlowGraph) -> str:
    """A Graphviz `digraph`: groups as `subgraph cluster_*`, inferred edges `style=dashed`. A
    group is an edge's end through an invisible anchor node inside its cluster (`lhead`/`ltail`)."""
    clusters = {group.id: f"cluster_{index}" for index, group in enumerate(graph.groups)}
    lines = [
        f"digraph {_dot_id(graph.flow_id)} {{",
        "  compound=true;",
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    _dot_members(graph, None, 1, clusters, lines)
    for edge in graph.edges:
        attributes = []
        if edge.target in clusters:
            attributes.append(f"lhead={clusters[edge.target]}")
        if edge.source in clusters:
            attributes.append(f"ltail={clusters[edge.source]}")
        if edge.inferred:
            attributes += ["style=dashed", 'label="inferred"']
        elif edge.label:
            attributes.append(f"label={_dot_id(edge.label)}")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_members(graph: FlowGraph, group_id: str | None, depth: int, clusters: dict[str, str], lines: list[str]) -> None:
    indent = "  " * depth
    for member in graph.children(group_id):
        if isinstance(member, GraphGroup):
            lines.append(f"{indent}subgraph {clusters[member.id]} {{")
            lines.append(f"{indent}  label={_dot_id(member.label)};")
            lines.append(f'{indent}  style={"dashed" if member.task_id is None else "rounded"};')
            lines.append(f"{indent}  {_dot_id(member.id)} [shape=point, style=invis, width=0, height=0, label=\"\"];")
            _dot_members(graph, member.id, depth + 1, clusters, lines)
            lines.append(f"{indent}}}")
        else:
            lines.append(f"{indent}{_dot_id(member.id)} [label={_dot_id(_node_label(member))}];")


def _dot_id(text: str) -> str:
    """A quoted Graphviz id: any text, backslashes and quotes escaped, newlines as `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _node_label(node: GraphNode) -> str:
    notes = f"\n{'; '.join(node.notes)}" if node.notes else ""
    return f"{node.id}\n{node.type}{notes}"


RENDERERS: dict[str, Callable[[FlowGraph], str]] = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}
"""`tflow graph --format` → renderer."""
