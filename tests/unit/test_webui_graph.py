"""The web view's drawing data (`client.webui.graph.page_graph`): boxes nested as the flow's
flowables and branches, every edge kept for the arrows, and each edge seen in the innermost box
holding both ends as the order between two of its direct children (what the page layers by)."""

from __future__ import annotations

from typing import Any

from client.webui.graph import page_graph
from temporal_flows.language.loader import load_flow_text

FLOW = """
id: drawn
namespace: e2e.webui
tasks:
  - id: first
    type: log
    message: a
  - id: fan
    type: parallel
    tasks:
      - id: left
        type: sequential
        tasks:
          - {id: l1, type: return, format: a}
          - {id: l2, type: return, format: b}
      - {id: right, type: return, format: c}
  - id: choose
    type: if
    condition: "{{ true }}"
    then:
      - {id: yes, type: return, format: y}
    else:
      - {id: no, type: return, format: n}
  - id: graph
    type: dag
    tasks:
      - task: {id: a, type: return, format: a}
      - task: {id: b, type: return, format: b}
        dependsOn: [a]
      - task: {id: c, type: return, format: c}
        dependsOn: [a, b]
errors:
  - {id: alert, type: log, message: failed}
"""


def boxes(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {item["id"]: item}
    for child in item.get("children", []):
        if child["kind"] != "task":
            found.update(boxes(child))
    return found


def test_boxes_children_and_order() -> None:
    root = page_graph(load_flow_text(FLOW, "drawn.yaml").flow)
    drawn = boxes(root)
    assert root["kind"] == "root" and root["label"] == "e2e.webui.drawn"
    assert [child["id"] for child in root["children"]] == ["first", "fan", "choose", "graph", "/errors"]
    assert [child["kind"] for child in root["children"]] == ["task", "group", "group", "group", "branch"]
    assert root["order"] == [["first", "fan"], ["fan", "choose"], ["choose", "graph"], ["graph", "/errors"]]
    assert drawn["fan"]["order"] == []  # a parallel's children start together
    assert drawn["left"]["order"] == [["l1", "l2"]]
    assert [child["kind"] for child in drawn["choose"]["children"]] == ["branch", "branch"]
    assert sorted(map(tuple, drawn["graph"]["order"])) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_every_edge_is_kept_for_the_arrows() -> None:
    root = page_graph(load_flow_text(FLOW, "drawn.yaml").flow)
    edges = {(edge["from"], edge["to"]): edge for edge in root["edges"]}
    assert edges[("first", "fan")]["kind"] == "order"
    assert edges[("a", "c")]["kind"] == "depends_on" and not edges[("a", "c")]["inferred"]
    errors = [edge for edge in root["edges"] if edge["kind"] == "errors"]
    assert errors and all(edge["to"] == "alert" for edge in errors)


STEPS = """
sources:
  api:
    type: rest
flow:
  - name: login
    source: api
    input: {url: "http://127.0.0.1:9/login"}
    output:
      - {name: token, type: jmespath, value: token}
  - name: users
    source: api
    input:
      url: http://127.0.0.1:9/users
      headers: {Authorization: "Bearer {{ flows.login.token }}"}
  - name: report
    source: api
    depends_on: [users]
    input: {url: "http://127.0.0.1:9/report"}
"""


def test_a_step_flow_draws_its_steps_at_the_top_with_inferred_edges() -> None:
    root = page_graph(load_flow_text(STEPS, "steps.yaml").flow)
    assert [child["id"] for child in root["children"]] == ["login", "users", "report"]
    assert sorted(map(tuple, root["order"])) == [("login", "users"), ("users", "report")]
    inferred = {(edge["from"], edge["to"]): edge["inferred"] for edge in root["edges"]}
    assert inferred == {("login", "users"): True, ("users", "report"): False}
