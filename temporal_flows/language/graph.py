"""The resolved graph of a loaded flow: tasks as nodes, flowable tasks and branches as groups, and
edges for execution order — what `tflow graph` prints and the web view draws.

It is plain data so the web view can ship it to a browser as JSON. `FlowGraph.to_dict()` gives:

    {"flow": {"id", "namespace", "dialect", "file"},
     "groups": [{"id", "label", "kind", "parent", "task_id", "type"}],
     "nodes":  [{"id", "label", "type", "kind", "group", "line", "notes"}],
     "edges":  [{"source", "target", "kind", "inferred", "label"}]}

`FlowGraph.to_tree()` nests the same data (boxes holding their children and the edges between
them) for a page that lays out box by box.

- A node is a task that is not flowable (runnable or pure, a `pause` without children, a
  `subflow`); its `id` is the task id (unique in a flow), `group` the id of the group it sits in
  (null: the flow's top level), `kind` runnable | pure | flowable, `notes` short remarks
  ("disabled", "runIf", "allowFailure", "only on jump", a subflow's target).
- A group is a box: a flowable task (`id` = its task id, `task_id` set, `kind` = its type:
  parallel, sequential, foreach, each_parallel, dag, switch, if, allow_failure, pause) or a list of
  tasks inside one (`task_id` null, `id` = `<owner>/<name>`, `kind` = then | else | case | defaults
  | errors | finally); the flow's own errors/finally are `/errors` and `/finally`. `parent` is the
  enclosing group's id (null: top level). Groups come parents first.
- An edge goes from a node or group id to a node or group id; the target waits for the source.
  `kind`: order (a sequential list: flow tasks, sequential, for-each body, branches),
  depends_on (a dag's declared `dependsOn` / a step's `depends_on`), inferred (a step's template
  reference; `inferred` is true only for these), on_success / on_error (a parallel's handler
  `next`), errors / finally (a scope's error and finally lists, after the scope).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from temporal_flows.model.flow import Flow, Task, TaskKind
from temporal_flows.tasks import TASK_TYPES
from temporal_flows.tasks.plan import Group

CONCURRENT_TYPES = ("parallel", "each_parallel", "dag")
"""Flowables whose children have no order between them (a dag's come from its relation)."""
FLOW_SCOPE = ""
"""The owner prefix of the flow's own errors/finally groups (`/errors`, `/finally`)."""


@dataclass
class GraphNode:
    id: str
    label: str
    type: str
    kind: str
    group: str | None = None
    line: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class GraphGroup:
    id: str
    label: str
    kind: str
    parent: str | None = None
    task_id: str | None = None
    type: str | None = None


@dataclass
class GraphEdge:
    source: str
    target: str
    kind: str
    label: str | None = None

    @property
    def inferred(self) -> bool:
        return self.kind == "inferred"


@dataclass
class FlowGraph:
    flow_id: str
    namespace: str
    dialect: str
    file: str = ""
    nodes: list[GraphNode] = field(default_factory=list)
    groups: list[GraphGroup] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)

    def node(self, node_id: str) -> GraphNode | None:
        return next((node for node in self.nodes if node.id == node_id), None)

    def group(self, group_id: str) -> GraphGroup | None:
        return next((group for group in self.groups if group.id == group_id), None)

    def children(self, group_id: str | None) -> list[GraphNode | GraphGroup]:
        """Nodes and groups directly inside a group (None: the top level), in declaration order."""
        order = {item_id: index for index, item_id in enumerate(self._declaration_order)}
        members: list[GraphNode | GraphGroup] = [node for node in self.nodes if node.group == group_id]
        members += [group for group in self.groups if group.parent == group_id]
        return sorted(members, key=lambda member: order.get(member.id, len(order)))

    def edges_into(self, target: str) -> list[GraphEdge]:
        return [edge for edge in self.edges if edge.target == target]

    def edges_from(self, source: str) -> list[GraphEdge]:
        return [edge for edge in self.edges if edge.source == source]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": {"id": self.flow_id, "namespace": self.namespace, "dialect": self.dialect, "file": self.file},
            "groups": [asdict(group) for group in self.groups],
            "nodes": [asdict(node) for node in self.nodes],
            "edges": [{**asdict(edge), "inferred": edge.inferred} for edge in self.edges],
        }

    def to_tree(self) -> dict[str, Any]:
        """The same graph nested, for a page that lays boxes out itself: the root and every group
        hold `children` (node and group dicts as in `to_dict`, groups with their own `children`
        and `edges`) and the `edges` between their direct children. An edge between things deeper
        inside is lifted to the children that hold them; `between` keeps its real ends."""
        boxes: dict[str | None, dict[str, Any]] = {None: {"id": None, "label": f"{self.namespace}.{self.flow_id}", "children": [], "edges": []}}
        for group in self.groups:
            boxes[group.id] = {**asdict(group), "children": [], "edges": []}
        for member_id in self._declaration_order:
            node = self.node(member_id)
            item, parent = (asdict(node), node.group) if node else (boxes[member_id], boxes[member_id]["parent"])
            boxes[parent]["children"].append(item)
        for edge in self.edges:
            source_path, target_path = self._path(edge.source), self._path(edge.target)
            depth = 0
            while source_path[depth] == target_path[depth]:
                depth += 1
            lifted = {**asdict(edge), "inferred": edge.inferred, "source": source_path[depth], "target": target_path[depth]}
            boxes[source_path[depth - 1]]["edges"].append({**lifted, "between": [edge.source, edge.target]})
        return boxes[None]

    def _path(self, item_id: str) -> list[str | None]:
        """The boxes from the root down to an item, then the item itself."""
        path: list[str | None] = [item_id]
        node = self.node(item_id)
        container = node.group if node else (group.parent if (group := self.group(item_id)) else None)
        while container is not None:
            path.insert(0, container)
            container = self.group(container).parent  # type: ignore[union-attr]
        return [None, *path]

    _declaration_order: list[str] = field(default_factory=list, repr=False)


def build_graph(flow: Flow) -> FlowGraph:
    """The graph of a normalized flow (either dialect)."""
    graph = FlowGraph(flow.id, flow.namespace, flow.dialect, flow.source_file)
    builder = _Builder(graph)
    if flow.dialect == "steps" and [task.type for task in flow.tasks] == ["dag"]:
        # a step flow is one dag: its steps are the flow's top level, with no box around them
        builder.task_list(flow.tasks[0].tasks, None, ordered=False)
        builder.dag_edges(flow.tasks[0])
    else:
        builder.task_list(flow.tasks, None)
    builder.scope_handlers(FLOW_SCOPE, None, _sinks(flow.tasks), flow.errors, flow.finally_tasks)
    return graph


class _Builder:
    """Walks the task tree once, adding nodes, groups and edges to one graph."""

    def __init__(self, graph: FlowGraph) -> None:
        self.graph = graph

    def task_list(self, tasks: list[Task], group: str | None, ordered: bool = True) -> None:
        """Tasks of one list; a sequential list chains them (`order` edges)."""
        for task in tasks:
            self.task(task, group)
        if ordered:
            for target in Group.chain(tasks).only_when_jumped:
                node = self.graph.node(target)
                if node is not None:
                    node.notes.append("only on jump")
            for previous, task in zip(tasks, tasks[1:]):
                self.graph.edges.append(GraphEdge(previous.id, task.id, "order"))
        self.handler_jumps(tasks)

    def task(self, task: Task, group: str | None) -> None:
        task_type = TASK_TYPES.get(task.type)
        kind = task_type.kind.value if task_type else TaskKind.RUNNABLE.value
        line = task.location.line if task.location else None
        if not (task.tasks or task.branches) or kind != TaskKind.FLOWABLE.value:
            self._declare(GraphNode(task.id, task.id, task.type, kind, group, line, _notes(task)))
            return
        self._declare(GraphGroup(task.id, f"{task.id} ({_describe(task)})", task.type, group, task.id, task.type))
        self.task_list(task.tasks, task.id, ordered=task.type not in CONCURRENT_TYPES)
        if task.type == "dag":
            self.dag_edges(task)
        for name, branch in task.branches.items():
            if name in ("errors", "finally"):
                continue
            kind_name = "case" if name.startswith("case ") else name
            branch_id = f"{task.id}/{name}"
            self._declare(GraphGroup(branch_id, name, kind_name, task.id))
            self.task_list(branch, branch_id)
        self.scope_handlers(task.id, group, [task.id], task.branches.get("errors", []), task.branches.get("finally", []))

    def dag_edges(self, dag: Task) -> None:
        """Declared edges (`depends_on`), and inferred ones: a dag's `depends_on` relation holds
        both, and a step keeps those its templates imply apart in its `inferred_depends_on` list
        (`temporal_flows.language.dialects.steps`). A step's `on_error` other than fail becomes a note."""
        relation: dict[str, list[str]] = dag.properties.get("depends_on") or {}
        on_failure: dict[str, str] = dag.properties.get("on_failure") or {}
        for child in dag.tasks:
            own_inferred = child.properties.get("inferred_depends_on")
            inferred = list(own_inferred) if isinstance(own_inferred, list) else []
            own_declared = child.properties.get("depends_on")
            declared_by_step = list(own_declared) if isinstance(own_declared, list) else []
            needed = list(dict.fromkeys([*relation.get(child.id, []), *declared_by_step, *inferred]))
            for dependency in needed:
                is_inferred = dependency in inferred and dependency not in declared_by_step
                self.graph.edges.append(GraphEdge(dependency, child.id, "inferred" if is_inferred else "depends_on"))
            node = self.graph.node(child.id)
            if child.id in on_failure and node is not None:
                node.notes.append(f"on_error {on_failure[child.id]}")

    def handler_jumps(self, tasks: list[Task]) -> None:
        """A parallel's `on_success`/`on_error` `next`: a jump to a later task of the same list."""
        for task in tasks:
            for handler in ("on_success", "on_error"):
                spec = task.properties.get(handler)
                if isinstance(spec, dict) and spec.get("next"):
                    label = handler.replace("_", " ")
                    self.graph.edges.append(GraphEdge(task.id, str(spec["next"]), handler, label))

    def scope_handlers(
        self, owner: str, group: str | None, sinks: list[str], errors: list[Task], final: list[Task]
    ) -> None:
        """A scope's errors and finally lists: groups beside the scope, entered after it."""
        for name, tasks, label in (("errors", errors, "on failure"), ("finally", final, "finally")):
            if not tasks:
                continue
            branch_id = f"{owner}/{name}"
            self._declare(GraphGroup(branch_id, name if owner == FLOW_SCOPE else f"{owner} {name}", name, group))
            self.task_list(tasks, branch_id)
            for sink in sinks:
                self.graph.edges.append(GraphEdge(sink, tasks[0].id, name, label))

    def _declare(self, item: GraphNode | GraphGroup) -> None:
        (self.graph.nodes if isinstance(item, GraphNode) else self.graph.groups).append(item)  # type: ignore[arg-type]
        self.graph._declaration_order.append(item.id)


def _sinks(tasks: list[Task]) -> list[str]:
    """What ends a sequential list: its last task."""
    return [tasks[-1].id] if tasks else []


def _describe(task: Task) -> str:
    """A flowable's type and how it runs its children, in a few words."""
    props = task.properties
    words = [task.type]
    if task.type == "parallel":
        words.append(str(props.get("strategy") or "wait_all").split(".")[-1].lower())
    limit = props.get("concurrent") or (props.get("concurrency_limit") if task.type == "foreach" else None)
    if limit:
        words.append(f"max {limit}")
    if task.type in ("foreach", "each_parallel") and props.get("values") is not None:
        words.append(f"over {_short(props['values'])}")
    if task.type in ("switch", "if"):
        words.append(_short(props.get("value", props.get("condition"))))
    if task.type == "loop_until":
        words.append(f"until {_short(props.get('condition'))}")
    return ", ".join(words)


def _notes(task: Task) -> list[str]:
    notes = []
    if task.type == "subflow":
        notes.append(f"calls {task.properties.get('namespace')}.{task.properties.get('flow_id')}")
    if task.disabled:
        notes.append("disabled")
    if task.run_if:
        notes.append(f"runIf {_short(task.run_if)}")
    if task.allow_failure:
        notes.append("allowFailure")
    return notes


def _short(value: Any, width: int = 30) -> str:
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
