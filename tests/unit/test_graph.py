"""`tflow graph`: the graph model of a loaded flow and its text, Mermaid and Graphviz renderings.

No server: these read flows and render them. The dot output is checked by Graphviz when `dot` is
installed (the check is skipped otherwise); Mermaid has no local parser here, so its structure is
checked by reading it (balanced subgraph/end, every edge's ends declared, safe ids).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from temporal_flows.language.graph import FlowGraph, build_graph
from temporal_flows.language.graph_render import render_dot, render_mermaid, render_text
from temporal_flows.language.loader import load_flow, load_flow_text
from tests.support import REPO, cli_env, tflow

NESTED = """
id: nested.flow-1
namespace: company.team
tasks:
  - id: prepare
    type: io.kestra.plugin.core.log.Log
    message: start
  - id: fan-out
    type: parallel
    on_error:
      next: recover
    tasks:
      - id: left
        type: sequential
        tasks:
          - {id: l.1, type: return, format: a}
          - {id: l.2, type: return, format: b}
      - {id: right, type: return, format: c}
  - id: loop
    type: foreach
    values: [1, 2]
    tasks:
      - id: graph
        type: dag
        tasks:
          - task: {id: d1, type: return, format: x}
          - task: {id: d2, type: return, format: y}
            dependsOn: [d1]
          - task: {id: d3, type: return, format: z}
            dependsOn: [d1, d2]
      - {id: after-dag, type: return, format: done}
  - id: pick
    type: switch
    value: "{{ 'a' }}"
    cases:
      a:
        - {id: case-a, type: return, format: A}
    defaults:
      - {id: fallback, type: return, format: D}
    errors:
      - {id: pick-failed, type: log, message: oops}
  - id: check
    type: if
    condition: "{{ true }}"
    then:
      - {id: yes, type: return, format: "y"}
    else:
      - {id: no, type: return, format: "n"}
  - {id: recover, type: log, message: recovered}
errors:
  - {id: alert, type: log, message: failed}
finally:
  - {id: cleanup, type: log, message: bye}
"""


def nested_graph() -> FlowGraph:
    return build_graph(load_flow_text(NESTED, "nested.yaml").flow)


def edges_of(graph: FlowGraph) -> set[tuple[str, str, str]]:
    return {(edge.source, edge.target, edge.kind) for edge in graph.edges}


def test_nested_flow_groups_nodes_and_edges() -> None:
    graph = nested_graph()
    groups = {group.id: (group.kind, group.parent, group.task_id) for group in graph.groups}
    assert groups == {
        "fan-out": ("parallel", None, "fan-out"),
        "left": ("sequential", "fan-out", "left"),
        "loop": ("foreach", None, "loop"),
        "graph": ("dag", "loop", "graph"),
        "pick": ("switch", None, "pick"),
        "pick/case a": ("case", "pick", None),
        "pick/defaults": ("defaults", "pick", None),
        "pick/errors": ("errors", None, None),
        "check": ("if", None, "check"),
        "check/then": ("then", "check", None),
        "check/else": ("else", "check", None),
        "/errors": ("errors", None, None),
        "/finally": ("finally", None, None),
    }
    nodes = {node.id: node.group for node in graph.nodes}
    assert nodes == {
        "prepare": None, "l.1": "left", "l.2": "left", "right": "fan-out", "d1": "graph", "d2": "graph",
        "d3": "graph", "after-dag": "loop", "case-a": "pick/case a", "fallback": "pick/defaults",
        "pick-failed": "pick/errors", "yes": "check/then", "no": "check/else", "recover": None,
        "alert": "/errors", "cleanup": "/finally",
    }
    assert graph.node("prepare").kind == "pure" and graph.node("prepare").type == "log"
    assert graph.node("recover").notes == ["only on jump"]  # only the target of an on_error.next
    assert edges_of(graph) == {
        # the flow's tasks in order; a parallel's children have none between them
        ("prepare", "fan-out", "order"), ("fan-out", "loop", "order"), ("loop", "pick", "order"),
        ("pick", "check", "order"), ("check", "recover", "order"),
        ("l.1", "l.2", "order"),  # a sequential inside the parallel
        ("graph", "after-dag", "order"),  # the for-each body in order
        ("d1", "d2", "depends_on"), ("d1", "d3", "depends_on"), ("d2", "d3", "depends_on"),  # the dag
        ("fan-out", "recover", "on_error"),  # the handler's jump
        ("pick", "pick-failed", "errors"),  # a task's errors after its scope
        ("recover", "alert", "errors"), ("recover", "cleanup", "finally"),  # the flow's, after its last task
    }
    assert not any(edge.inferred for edge in graph.edges)


def test_to_dict_is_json_with_the_documented_shape() -> None:
    data = json.loads(json.dumps(nested_graph().to_dict()))
    assert set(data) == {"flow", "groups", "nodes", "edges"}
    assert data["flow"] == {"id": "nested.flow-1", "namespace": "company.team", "dialect": "tasks", "file": "nested.yaml"}
    assert set(data["nodes"][0]) == {"id", "label", "type", "kind", "group", "line", "notes"}
    assert set(data["groups"][0]) == {"id", "label", "kind", "parent", "task_id", "type"}
    assert set(data["edges"][0]) == {"source", "target", "kind", "inferred", "label"}
    assert data["nodes"][0]["line"] == 5  # `- id: prepare`
    parents_first = [group["id"] for group in data["groups"]]
    for group in data["groups"]:
        if group["parent"] is not None:
            assert parents_first.index(group["parent"]) < parents_first.index(group["id"])


def test_to_tree_nests_boxes_and_lifts_edges_to_direct_children() -> None:
    tree = json.loads(json.dumps(nested_graph().to_tree()))
    assert tree["id"] is None and tree["label"] == "company.team.nested.flow-1"
    assert [child["id"] for child in tree["children"]] == [
        "prepare", "fan-out", "loop", "pick", "pick/errors", "check", "recover", "/errors", "/finally",
    ]
    loop = tree["children"][2]
    dag = loop["children"][0]
    assert [child["id"] for child in dag["children"]] == ["d1", "d2", "d3"]
    assert {(edge["source"], edge["target"]) for edge in dag["edges"]} == {("d1", "d2"), ("d1", "d3"), ("d2", "d3")}
    assert [(edge["source"], edge["target"], edge["kind"]) for edge in loop["edges"]] == [("graph", "after-dag", "order")]
    lifted = {(edge["source"], edge["target"]): edge for edge in tree["edges"]}
    assert lifted[("pick", "pick/errors")]["between"] == ["pick", "pick-failed"]  # into a box: lifted to it
    assert lifted[("recover", "/finally")]["kind"] == "finally"
    assert sum(len(box["edges"]) for box in (tree, loop, dag)) + 1 == len(nested_graph().edges)  # + l.1 → l.2


def with_inferred_edges() -> FlowGraph:
    """The dag of NESTED with inferred dependencies set by hand, as the step-flow dialect records
    them: the dag's `depends_on` holds every dependency, a child's `inferred_depends_on` those its
    templates imply (and its `depends_on` list the declared ones)."""
    flow = load_flow_text(NESTED, "nested.yaml").flow
    dag = next(task for task in flow.all_tasks() if task.id == "graph")
    dag.tasks.append(type(dag)(id="d4", type="return", properties={"format": "w", "inferred_depends_on": ["d3", "d1"]}))
    dag.properties["depends_on"]["d4"] = ["d3", "d1"]
    return build_graph(flow)


def test_inferred_edges_are_marked_inferred() -> None:
    graph = with_inferred_edges()
    inferred = {(edge.source, edge.target) for edge in graph.edges if edge.inferred}
    assert inferred == {("d3", "d4"), ("d1", "d4")}
    assert {("d1", "d2", "depends_on"), ("d2", "d3", "depends_on")} <= edges_of(graph)
    assert all(edge["inferred"] == (edge["kind"] == "inferred") for edge in graph.to_dict()["edges"])
    assert "    d4  return  inferred after: d3, d1" in render_text(graph).splitlines()
    mermaid = render_mermaid(graph)
    assert "t_d3 -.->|inferred| t_d4" in mermaid and "t_d1 -.->|inferred| t_d4" in mermaid
    assert "t_d2 --> t_d3" in mermaid
    dot = render_dot(graph)
    assert '"d3" -> "d4" [style=dashed, label="inferred"];' in dot
    assert '"d2" -> "d3";' in dot


def mermaid_structure(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Declared ids and edges of a Mermaid flowchart; asserts it is well formed as it reads."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "flowchart TD"
    declared: set[str] = set()
    edges: list[tuple[str, str]] = []
    depth = 0
    for line in lines[1:]:
        if match := re.fullmatch(r'subgraph ([A-Za-z0-9_]+) \["[^"]*"\]', line):
            depth += 1
            declared.add(match.group(1))
        elif line == "end":
            depth -= 1
            assert depth >= 0, "`end` without a subgraph"
        elif match := re.fullmatch(r'([A-Za-z0-9_]+)\["[^"]*"\]', line):
            declared.add(match.group(1))
        elif match := re.fullmatch(r"([A-Za-z0-9_]+) (-->|-\.->)(?:\|[^|\"]+\|)? ([A-Za-z0-9_]+)", line):
            edges.append((match.group(1), match.group(3)))
        else:
            pytest.fail(f"unexpected Mermaid line: {line!r}")
    assert depth == 0, "unbalanced subgraph/end"
    assert not declared & {"end", "subgraph", "graph", "flowchart"}
    return declared, edges


@pytest.mark.parametrize("graph", [nested_graph(), with_inferred_edges()], ids=["nested", "inferred"])
def test_mermaid_is_well_formed(graph: FlowGraph) -> None:
    declared, edges = mermaid_structure(render_mermaid(graph))
    assert len(declared) == len(graph.nodes) + len(graph.groups)
    assert len(edges) == len(graph.edges)
    for source, target in edges:
        assert source in declared and target in declared
    assert len(set(edges)) == len(edges)


def test_mermaid_escapes_labels() -> None:
    flow = load_flow_text(
        'id: f\nnamespace: n\ntasks:\n  - id: "a.b-c"\n    type: if\n    condition: "{{ x > 1 and y == \\"q\\" }}"\n'
        "    then:\n      - {id: end, type: return, format: e}\n",
        "quotes.yaml",
    ).flow
    mermaid = render_mermaid(build_graph(flow))
    declared, _ = mermaid_structure(mermaid)
    assert "g_a_b_c" in declared and "t_end" in declared  # `end` is a Mermaid keyword: prefixed
    assert "#gt;" in mermaid and "#quot;" in mermaid


def dot_structure_ok(text: str) -> None:
    assert text.startswith('digraph "') and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")


@pytest.mark.parametrize("graph", [nested_graph(), with_inferred_edges()], ids=["nested", "inferred"])
def test_dot_is_valid_for_graphviz(graph: FlowGraph, tmp_path: Path) -> None:
    text = render_dot(graph)
    dot_structure_ok(text)
    assert text.count("subgraph cluster_") == len(graph.groups)
    assert '"l.1" -> "l.2";' in text  # ids with dots are quoted
    assert '"fan-out" -> "loop" [lhead=cluster_2, ltail=cluster_0];' in text  # groups end edges at their box
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed: the output's structure was checked, not its validity")
    done = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning either (e.g. a cluster edge that cannot be drawn)
    assert "<svg" in done.stdout and ">l.1<" in done.stdout


@pytest.mark.parametrize("name", ["parallel", "sequential"])
def test_text_of_seed_examples(name: str) -> None:
    text = render_text(build_graph(load_flow(REPO / "examples" / f"{name}.yaml").flow))
    lines = text.splitlines()
    assert lines[0] == f"flow {name} (namespace company.team, tasks dialect)"
    assert all(len(line) <= 80 for line in lines)
    assert "last  return  after: parent" in lines
    if name == "parallel":
        assert "[parent (parallel, fail_fast, max 3)]" in lines
        assert [line for line in lines if line.startswith("  t")] == [f"  t{n}  commands" for n in range(1, 7)]
        assert lines[-1] == "7 tasks, 1 group, 1 edge (0 inferred)"
    else:
        assert lines.index("  [seq1 (sequential)]") < lines.index("    t1  commands") < lines.index("  [seq2 (sequential)]")
        assert "    t2  commands  after: t1" in lines and "    t6  commands  after: t5" in lines


def test_text_wraps_long_waits_within_80_columns() -> None:
    steps = "\n".join(f"          - task: {{id: step-number-{n}, type: return, format: x}}" for n in range(8))
    needs = ", ".join(f"step-number-{n}" for n in range(8))
    flow = load_flow_text(
        f"id: f\nnamespace: n\ntasks:\n  - id: d\n    type: dag\n    tasks:\n{steps.replace('          ', '      ')}\n"
        f"      - task: {{id: last, type: return, format: x}}\n        dependsOn: [{needs}]\n",
        "wide.yaml",
    ).flow
    lines = render_text(build_graph(flow)).splitlines()
    assert all(len(line) <= 80 for line in lines)
    start = lines.index("  last  return")
    assert lines[start + 1].startswith("      after: step-number-0, step-number-1")


def test_cli_graph_formats_output_file_and_bad_flow(tmp_path: Path) -> None:
    flow = tmp_path / "nested.yaml"
    flow.write_text(NESTED)
    out = tmp_path / "graph.mmd"
    done = subprocess.run(tflow("graph", str(flow), "--format", "mermaid", "--output", str(out)),
                          capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    mermaid_structure(out.read_text())
    done = subprocess.run(tflow("graph", str(REPO / "examples" / "sequential.yaml")),
                          capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert done.returncode == 0 and "last  return  after: parent" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nnamespace: n\ntasks:\n  - id: a\n    type: nope\n")
    done = subprocess.run(tflow("graph", str(bad), "--format", "dot"), capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert f"{bad}:5:" in done.stderr and "nope" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(tflow("graph", str(flow), "--format", "svg"), capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert done.returncode == 2 and "text, mermaid, dot" in done.stderr


STEP_FLOW = """
sources:
  oauth_service:
    type: rest
  data_service:
    type: rest
  etl_script:
    type: process
flow:
  - name: authenticate
    source: oauth_service
    input:
      url: https://api.example.com/auth
    output:
      - {name: token, type: jmespath, value: access_token}
  - name: fetch_users
    source: data_service
    input:
      url: https://api.example.com/users
      headers:
        Authorization: "Bearer {{ flows.authenticate.token }}"
    output:
      - {name: users, type: json}
  - name: fetch_products
    source: data_service
    depends_on: [authenticate]
    on_error: skip
    input:
      url: https://api.example.com/products
    output:
      - {name: products, type: json}
  - name: combine_data
    source: etl_script
    depends_on: [fetch_users]
    input:
      command: ["python", "merge.py"]
      env:
        USERS: "{{ flows.fetch_users.users }}"
        PRODUCTS: "{{ flows.fetch_products.products }}"
"""


def test_step_flow_graph_marks_inferred_dependencies(tmp_path: Path) -> None:
    graph = build_graph(load_flow_text(STEP_FLOW, str(tmp_path / "etl.yaml")).flow)
    assert (graph.flow_id, graph.dialect, graph.groups) == ("etl", "steps", [])  # the steps are the top level
    assert [(node.id, node.type) for node in graph.nodes] == [
        ("authenticate", "http"), ("fetch_users", "http"), ("fetch_products", "http"), ("combine_data", "commands"),
    ]
    assert graph.node("fetch_products").notes == ["on_error skip"]
    assert edges_of(graph) == {
        ("authenticate", "fetch_users", "inferred"),  # its header's template
        ("authenticate", "fetch_products", "depends_on"),
        ("fetch_users", "combine_data", "depends_on"),  # declared and referenced: declared
        ("fetch_products", "combine_data", "inferred"),
    }
    lines = render_text(graph).splitlines()
    assert "fetch_users  http  inferred after: authenticate" in lines
    assert "combine_data  commands  after: fetch_users  inferred after: fetch_products" in lines
    assert lines[-1] == "4 tasks, 0 groups, 4 edges (2 inferred)"
    mermaid = render_mermaid(graph)
    assert "t_authenticate -.->|inferred| t_fetch_users" in mermaid and "t_authenticate --> t_fetch_products" in mermaid
    dot = render_dot(graph)
    assert '"fetch_products" -> "combine_data" [style=dashed, label="inferred"];' in dot
    assert '"fetch_users" -> "combine_data";' in dot
