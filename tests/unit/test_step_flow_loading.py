"""Step flows load into one `dag` of runnable tasks (SPEC §3.1): dependencies declared and inferred
from templates kept apart, every problem reported at once with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_flows.expressions.templates import referenced_outputs
from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError

MIXED = """\
sources:
  oauth: {type: rest}
  etl: {type: process}
flow:
  - name: authenticate
    source: oauth
    input: {url: "https://api/auth"}
    output:
      - {name: token, type: jmespath, value: access_token}
  - name: fetch_users
    source: oauth
    input:
      url: https://api/users
      headers: {Authorization: "Bearer {{ flows.authenticate.token }}"}
    output:
      - {name: users, type: json}
  - name: combine
    source: etl
    depends_on: [fetch_users]
    on_error: continue
    input:
      command: ["python", "merge.py", "{{ flows['fetch_users'].users | length }}"]
"""


def test_steps_become_one_dag_with_declared_and_inferred_dependencies(tmp_path: Path) -> None:
    file = tmp_path / "mixed.yaml"
    flow = load_flow_text(MIXED, str(file)).flow
    assert (flow.id, flow.dialect) == ("mixed", "steps")
    [dag] = flow.tasks
    assert dag.type == "dag" and [task.id for task in dag.tasks] == ["authenticate", "fetch_users", "combine"]
    users, combine = dag.tasks[1], dag.tasks[2]
    assert (users.type, users.properties["uri"]) == ("http", "https://api/users")
    assert (users.properties["depends_on"], users.properties["inferred_depends_on"]) == ([], ["authenticate"])
    assert (combine.properties["depends_on"], combine.properties["inferred_depends_on"]) == (["fetch_users"], [])
    assert dag.properties["depends_on"] == {"fetch_users": ["authenticate"], "combine": ["fetch_users"]}
    assert dag.properties["on_failure"] == {"combine": "continue"}
    assert dag.properties["strategy"] == "fail_fast"
    assert combine.type == "commands"
    assert combine.properties["commands"] == ['"$TFLOW_ARG_0" "$TFLOW_ARG_1" "$TFLOW_ARG_2"']
    assert combine.properties["env"] == {
        "TFLOW_ARG_0": "python", "TFLOW_ARG_1": "merge.py", "TFLOW_ARG_2": "{{ flows['fetch_users'].users | length }}",
    }
    assert combine.properties["working_directory"] == str(tmp_path.resolve())


def test_referenced_outputs_reads_the_template_ast() -> None:
    found = referenced_outputs("{{ flows.a.x }} {{ flows['b']['y'] | upper }} {{ flows.c }} {{ 'flows.d.z' }} {{ other.e.w }}")
    assert found == {("a", "x"), ("b", "y"), ("c", None)}


def test_every_problem_at_once_with_its_place(tmp_path: Path) -> None:
    text = MIXED.replace("flows.authenticate.token", "flows.authenticate.tokne").replace(
        "depends_on: [fetch_users]", "depends_on: [combine, fetch_userz]"
    ).replace("source: etl", "source: etll").replace("{url: \"https://api/auth\"}", "{url: x, command: ls}")
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "bad.yaml")
    messages = [str(problem) for problem in raised.value.problems]
    expected = [
        "bad.yaml:7:21: step `authenticate`: a rest source does not take input `command`",
        "bad.yaml:14:16: step `fetch_users`, input `headers`: step `authenticate` has no output `tokne` (did you mean `token`?)",
        "step `combine`: unknown source `etll` (did you mean `etl`?)",
    ]
    for message in expected:
        assert any(message in found for found in messages), (message, messages)
    assert len(messages) == 3, messages  # combine did not normalize: its depends_on is not checked


def test_cycles_self_dependencies_and_unknown_steps(tmp_path: Path) -> None:
    text = MIXED.replace("    input: {url: \"https://api/auth\"}", "    depends_on: [combine, authenticate, nobody]\n    input: {url: \"https://api/auth\"}")
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "cycle.yaml")
    messages = "\n".join(str(problem) for problem in raised.value.problems)
    assert "step `authenticate` depends on itself" in messages
    assert "step `authenticate` depends on unknown step `nobody`" in messages
    assert "dependency cycle: `authenticate` → `combine` → `fetch_users` → `authenticate`" in messages


def test_a_source_type_or_step_source_that_is_not_text_is_a_problem_not_a_crash() -> None:
    text = "sources:\n  api: {type: [rest]}\n  etl: {type: process}\nflow:\n  - {name: s, source: {api: 1}, input: {command: ls}}\n"
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "odd.yaml")
    assert [str(problem) for problem in raised.value.problems] == [
        "odd.yaml:2:15: source `api`: unknown type `['rest']` (expected rest or process) (did you mean `rest`?)",
        "odd.yaml:5:23: step `s`: unknown source `{'api': 1}`",
    ]
