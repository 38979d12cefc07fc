"""Loading and validating flows: every problem names file, line, column and what was expected."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from temporal_flows.language.loader import load_flow, load_flow_text
from temporal_flows.model.flow import Flow
from temporal_flows.model.problems import FlowError

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"


def problems_of(text: str) -> list[str]:
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "flow.yaml")
    return [str(problem) for problem in raised.value.problems]


def test_seed_examples_load_with_kestra_defaults():
    loaded = load_flow(REPO / "examples" / "parallel.yaml")
    parent = loaded.flow.tasks[0]
    assert parent.type == "parallel"
    assert parent.properties == {"concurrent": 3, "strategy": "fail_fast"}
    assert [child.type for child in parent.tasks] == ["commands"] * 6
    assert loaded.flow.tasks[1].type == "return"


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is absent")
def test_examples_are_the_seed_documents_examples():
    text = (SEEDS / "001_2312c687d9e53869.txt").read_text()
    blocks = [block.rstrip() for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    assert (REPO / "examples" / "parallel.yaml").read_text().rstrip() == blocks[0]
    assert (REPO / "examples" / "sequential.yaml").read_text().rstrip() == blocks[1]


def test_yaml_syntax_error_names_line_and_column():
    found = problems_of("id: x\nnamespace: y\ntasks:\n  - id: a\n    type: [unclosed\n")
    assert len(found) == 1
    assert re.match(r"flow\.yaml:\d+:\d+: invalid YAML", found[0])
    assert found[0].startswith("flow.yaml:6:") or found[0].startswith("flow.yaml:5:")


def test_unknown_task_type_suggests_the_closest():
    found = problems_of(
        """
id: x
namespace: y
tasks:
  - id: a
    type: io.kestra.plugin.scripts.shell.Comands
    commands: [echo]
"""
    )
    assert found == [
        "flow.yaml:6:11: unknown task type `io.kestra.plugin.scripts.shell.Comands` "
        "(did you mean `io.kestra.plugin.scripts.shell.Commands`?)"
    ]


def test_all_problems_at_once():
    found = problems_of(
        """
id: x
namespace: y
tasks:
  - id: a
    type: commands
    commands: "echo not a list"
    alowFailure: true
  - id: a
    type: return
    format: "{{ outputs.nope.value }}"
  - id: c
    type: sequential
    tasks: []
    timeout: soon
"""
    )
    assert any(p.startswith("flow.yaml:7:15: `commands` must be a list of strings") for p in found), found
    assert any("flow.yaml:8:5: unknown property `alowFailure`" in p and "did you mean `allow_failure`" in p for p in found), found
    assert any(p.startswith("flow.yaml:9:5: duplicate task id `a` (first defined at line 5)") for p in found), found
    assert any(p.startswith("flow.yaml:11:13:") and "unknown task `nope`" in p for p in found), found
    assert any(p.startswith("flow.yaml:14:12:") and "non-empty list of tasks" in p for p in found), found
    assert any(p.startswith("flow.yaml:15:14: `timeout` must be an ISO 8601 duration") for p in found), found


def test_camel_and_snake_case_are_the_same_property():
    text = """
id: x
namespace: y
tasks:
  - id: p
    type: parallel
    max_workers: 2
    tasks:
      - id: a
        type: commands
        allow_failure: true
        commands: [echo a]
      - id: b
        type: io.kestra.plugin.scripts.shell.Commands
        allowFailure: true
        runIf: "{{ true }}"
        commands: [echo b]
"""
    flow = load_flow_text(text, "f.yaml").flow
    parallel = flow.tasks[0]
    assert parallel.properties["concurrent"] == 2
    assert parallel.properties["strategy"] == "wait_all"  # the `parallel` spec's default
    assert [child.allow_failure for child in parallel.tasks] == [True, True]
    assert parallel.tasks[1].run_if == "{{ true }}"


def test_kestra_parallel_continue_waits_for_all_and_explicit_strategy_wins():
    def strategy(extra: str) -> str:
        text = f"""
id: x
namespace: y
tasks:
  - id: p
    type: io.kestra.plugin.core.flow.Parallel
{extra}
    tasks:
      - id: a
        type: return
        format: a
"""
        return load_flow_text(text, "f.yaml").flow.tasks[0].properties["strategy"]

    assert strategy("    onChildFailure: CONTINUE") == "wait_all"
    assert strategy("    concurrent: 1") == "fail_fast"
    assert strategy("    strategy: race") == "race"


def test_unsupported_yet_is_said_plainly():
    found = problems_of(
        """
id: x
namespace: y
concurrency: {limit: 1}
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    tasks: []
"""
    )
    assert "flow.yaml:4:1: flow property `concurrency` is not supported yet" in found
    assert "flow.yaml:9:12: `tasks` of task `loop` must be a non-empty list of tasks" in found


def test_template_syntax_and_unknown_variable():
    found = problems_of(
        """
id: x
namespace: y
tasks:
  - id: a
    type: return
    format: "{{ task.id "
  - id: b
    type: return
    format: "{{ taskk.id }}"
"""
    )
    assert any(p.startswith("flow.yaml:7:13: task `a`, `format`: invalid expression") for p in found), found
    # An unknown variable is not a reference to a task: like Kestra, it fails its task at run time.
    assert not any("taskk" in p for p in found), found


def test_empty_and_non_mapping_files():
    assert problems_of("") == ["flow.yaml:1:1: the file is empty: expected a flow (a mapping with `tasks`)"]
    assert problems_of("- a\n- b\n")[0].startswith("flow.yaml:1:1: a flow must be a mapping")


def test_normalized_flow_round_trips_as_workflow_input():
    flow = load_flow(REPO / "examples" / "sequential.yaml").flow
    assert Flow.from_dict(flow.to_dict()) == flow
    assert Flow.from_dict(flow.to_dict()).digest() == flow.digest()
    # The compact input (defaults left out) reads back as the same flow, at well under half the size.
    assert Flow.from_dict(flow.to_input()) == flow
    assert len(json.dumps(flow.to_input())) < len(json.dumps(flow.to_dict())) / 2


def test_flow_too_big_for_a_workflow_input_is_refused_with_its_size_and_the_limit():
    command = "echo " + "x" * 9_000
    tasks = "".join(f"\n  - {{id: t{index}, type: commands, commands: [\"{command}\"]}}" for index in range(240))
    [problem] = problems_of(f"id: big\nnamespace: tests\ntasks:{tasks}\n")
    assert problem.startswith("flow.yaml:1:1: the flow is too big to run")
    assert re.search(r"takes 2,1\d\d,\d{3} bytes, over Temporal's 2,097,152-byte limit", problem), problem
    assert "240 tasks" in problem


def test_missing_required_property():
    found = problems_of("id: x\nnamespace: y\ntasks:\n  - id: a\n    type: commands\n")
    assert found == ["flow.yaml:4:5: task `a` (commands) is missing `commands`"]


def test_yaml_1_2_booleans_keep_words_as_strings():
    flow = load_flow_text(
        "id: x\nnamespace: y\ntasks:\n  - id: off\n    type: return\n    format: yes\n    disabled: false\n", "f.yaml"
    ).flow
    assert flow.tasks[0].id == "off"
    assert flow.tasks[0].properties["format"] == "yes"
    assert flow.tasks[0].disabled is False


def test_handler_targets_and_basic_fields_are_checked():
    found = problems_of(
        """
id: x
namespace: y
tasks:
  - id: before
    type: return
    format: a
  - id: p
    type: parallel
    tasks:
      - {id: c, type: basic, commands: ["true"]}
      - {id: d, type: basic}
    on_success: {next: before}
    on_error: {next: handlr, with: {e: "{{ .error }}"}}
  - id: handler
    type: return
    format: "{{ input.e }}"
"""
    )
    assert any(p.startswith("flow.yaml:12:23:") and "a `basic` task is a task decided by its fields: `commands`" in p for p in found), found
    assert any("`on_success.next` of `p`: `before` comes before it" in p for p in found), found
    assert any("`on_error.next` of `p`: `handlr` is not a task of the same list (did you mean `handler`?)" in p for p in found), found


def test_dag_cycles_name_their_members():
    found = problems_of(
        """
id: x
namespace: y
tasks:
  - id: g
    type: dag
    tasks:
      - task: {id: a, type: return, format: a}
        dependsOn: [c]
      - task: {id: b, type: return, format: b}
        dependsOn: [a]
      - task: {id: c, type: return, format: c}
        dependsOn: [b, nope]
"""
    )
    assert any("dag `g` has a dependency cycle: `a` → `c` → `b` → `a`" in p for p in found), found
    assert any("`c` depends on `nope`, which is not a task of dag `g`" in p for p in found), found


@pytest.mark.parametrize(("written", "shown"), [("~", "null"), ("{a: 1}", "a mapping"), ("[PT1S]", "a list")])
def test_a_duration_written_as_null_a_mapping_or_a_list_is_a_problem_not_a_crash(written: str, shown: str):
    found = problems_of(
        f"""
id: x
namespace: y
tasks:
  - id: a
    type: return
    format: a
    timeout: {written}
    retry: {{type: constant, interval: {written}, maxAttempt: 2}}
"""
    )
    expected = "an ISO 8601 duration like `PT5M` or a short form like `5m`, `30s`, `1h30m`"
    assert found[0] == f"flow.yaml:8:14: `timeout` must be {expected}, got {shown}"
    assert found[1].startswith(f"flow.yaml:9:29: retry `interval` must be {expected}, got "), found
    assert len(found) == 2, found
