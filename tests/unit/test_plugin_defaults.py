"""Kestra's plugin defaults (`pluginDefaults`, `taskDefaults`, a `--defaults` file) merged into the
flow's tasks before they are checked: which tasks a default reaches (type under any name, prefix,
any depth, triggers), how values merge (the task wins, forced defaults win, maps merge, lists join,
null never overrides), the precedence of the file's against the flow's, where problems point, and
the bound on what merging may add."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from temporal_flows.language.loader import DefaultsFile, load_defaults_file, load_flow_text
from temporal_flows.language.plugin_defaults import apply_defaults
from temporal_flows.language.schema import flow_schema
from temporal_flows.language.source import parse_yaml
from temporal_flows.model.flow import Flow, Task
from temporal_flows.model.problems import FlowError


def flow_text(tasks: str, defaults: str = "", extra: str = "") -> str:
    text = "id: f\nnamespace: n\ntasks:\n" + textwrap.indent(textwrap.dedent(tasks).strip("\n"), "  ") + "\n"
    if defaults:
        text += "pluginDefaults:\n" + textwrap.indent(textwrap.dedent(defaults).strip("\n"), "  ") + "\n"
    return text + textwrap.dedent(extra)


def load(text: str, defaults: DefaultsFile | None = None) -> Flow:
    return load_flow_text(text, "flow.yaml", defaults).flow


def task(flow: Flow, task_id: str) -> Task:
    return next(found for found in flow.all_tasks() if found.id == task_id)


def problems(text: str, defaults: DefaultsFile | None = None) -> list[str]:
    with pytest.raises(FlowError) as raised:
        load(text, defaults)
    return [str(problem) for problem in raised.value.problems]


def defaults_file(tmp_path: Path, text: str) -> DefaultsFile:
    path = tmp_path / "defaults.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return load_defaults_file(path)


LOG_DEFAULT = """
- type: io.kestra.plugin.core.log.Log
  values:
    message: from the default
    level: WARN
"""


# -- which tasks a default reaches ----------------------------------------------------------------


def test_a_default_fills_what_the_task_leaves_out_and_the_task_keeps_its_own():
    flow = load(flow_text("""
        - id: bare
          type: io.kestra.plugin.core.log.Log
        - id: own
          type: io.kestra.plugin.core.log.Log
          message: mine
    """, LOG_DEFAULT))
    assert task(flow, "bare").properties == {"message": "from the default", "level": "WARN"}
    assert task(flow, "own").properties == {"message": "mine", "level": "WARN"}


def test_a_type_matches_under_each_of_its_names():
    flow = load(flow_text("""
        - {id: short, type: log}
        - {id: current, type: io.kestra.plugin.core.log.Log}
        - {id: old, type: io.kestra.core.tasks.log.Log}
        - {id: echo, type: io.kestra.plugin.core.debug.Echo}
        - {id: other, type: io.kestra.plugin.core.debug.Return, format: x}
    """, """
        - type: io.kestra.core.tasks.log.Log
          values: {message: hello}
    """))
    assert [task(flow, name).properties.get("message") for name in ("short", "current", "old", "echo")] == ["hello"] * 4
    assert "message" not in task(flow, "other").properties


def test_a_prefix_reaches_the_types_it_starts_and_brings_each_only_what_it_has():
    flow = load(flow_text("""
        - {id: shell, type: io.kestra.plugin.scripts.shell.Commands, commands: [echo]}
        - {id: python, type: io.kestra.plugin.scripts.python.Script, script: "print(1)"}
        - {id: log, type: io.kestra.plugin.core.log.Log, message: m}
    """, """
        - type: io.kestra.plugin.scripts
          values:
            env: {FROM: prefix}
            python: python3
            warningOnStdErr: false
    """))
    assert task(flow, "shell").properties["env"] == {"FROM": "prefix"}
    assert "python" not in task(flow, "shell").properties  # a shell task has no `python`: dropped, as Kestra does
    assert task(flow, "python").properties["python"] == "python3"
    assert task(flow, "python").properties["warning_on_std_err"] is False
    assert task(flow, "log").properties == {"message": "m"}


def test_defaults_reach_tasks_at_any_depth_errors_finally_and_triggers():
    flow = load(flow_text("""
        - id: outer
          type: io.kestra.plugin.core.flow.Parallel
          tasks:
            - id: each
              type: io.kestra.plugin.core.flow.ForEach
              values: [1, 2]
              tasks:
                - id: branch
                  type: io.kestra.plugin.core.flow.If
                  condition: "{{ true }}"
                  then:
                    - {id: deep, type: log}
                  else:
                    - id: dag
                      type: io.kestra.plugin.core.flow.Dag
                      tasks:
                        - task: {id: in_dag, type: log}
            - id: pick
              type: io.kestra.plugin.core.flow.Switch
              value: a
              cases:
                a:
                  - {id: in_case, type: log}
          errors:
            - {id: on_error, type: log}
          finally:
            - {id: at_end, type: log}
    """, LOG_DEFAULT + """
- type: io.kestra.plugin.core.trigger.Schedule
  values: {timezone: Europe/Paris}
""", extra="""
        errors:
          - {id: flow_error, type: log}
        finally:
          - {id: flow_end, type: log}
        triggers:
          - {id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 2 * * *"}
    """))
    for name in ("deep", "in_dag", "in_case", "on_error", "at_end", "flow_error", "flow_end"):
        assert task(flow, name).properties["message"] == "from the default", name
    assert flow.triggers[0]["timezone"] == "Europe/Paris"


# -- how values merge --------------------------------------------------------------------------------


def test_forced_values_win_over_the_task_and_others_lose_to_it():
    flow = load(flow_text("""
        - {id: t, type: log, message: mine, level: ERROR}
    """, """
        - type: log
          values: {message: soft}
        - type: log
          forced: true
          values: {level: DEBUG}
    """))
    assert task(flow, "t").properties == {"message": "mine", "level": "DEBUG"}


def test_maps_merge_key_by_key_lists_join_and_null_never_overrides():
    flow = load(flow_text("""
        - id: t
          type: io.kestra.plugin.scripts.shell.Commands
          commands: [echo own]
          env: {OWN: "1", BOTH: own}
          beforeCommands: [echo own-before, echo shared]
          outputFiles: null
    """, """
        - type: io.kestra.plugin.scripts.shell.Commands
          values:
            env: {DEFAULT: "2", BOTH: default}
            before_commands: [echo shared, echo default-before]
            outputFiles: ["*.csv"]
    """))
    props = task(flow, "t").properties
    assert props["env"] == {"OWN": "1", "BOTH": "own", "DEFAULT": "2"}
    assert props["before_commands"] == ["echo shared", "echo default-before", "echo own-before"]  # the default's first
    assert props["output_files"] == ["*.csv"]
    assert props["commands"] == ["echo own"]


def test_older_task_defaults_and_a_respelled_kestra_type():
    flow = load(flow_text("""
        - id: script
          type: io.kestra.plugin.scripts.shell.Script
        - {id: bash, type: io.kestra.core.tasks.scripts.Bash, commands: [echo b], exitOnFailed: false}
    """, extra="""
        taskDefaults:
          - type: io.kestra.plugin.scripts.shell.Script
            values:
              script: |
                echo one
                echo two
    """))
    assert task(flow, "script").type == "commands"
    assert task(flow, "script").properties["commands"] == ["echo one\necho two\n"]
    assert task(flow, "bash").properties == {"commands": ["echo b"], "fail_fast": False, "interpreter": ["/bin/bash", "-c"]}


# -- the defaults file against the flow's own --------------------------------------------------------


def test_the_flows_defaults_win_over_the_files_unless_those_are_forced(tmp_path: Path):
    file = defaults_file(tmp_path, """
        pluginDefaults:
          - type: log
            values: {message: from the file, level: ERROR}
          - type: commands
            forced: true
            values: {env: {FORCED: file}, failFast: false}
          - type: commands
            forced: true
            values: {env: {FORCED: second}}
    """)
    flow = load(flow_text("""
        - {id: bare, type: log}
        - {id: flow_default, type: io.kestra.plugin.core.log.Log}
        - {id: cmd, type: commands, commands: [echo], env: {FORCED: task}, failFast: true}
    """, """
        - type: io.kestra.plugin.core.log.Log
          values: {level: WARN}
        - type: commands
          forced: true
          values: {env: {FORCED: flow}}
    """), file)
    assert task(flow, "bare").properties == {"message": "from the file", "level": "WARN"}
    assert task(flow, "cmd").properties["env"] == {"FORCED": "file"}  # the file's first forced default wins
    assert task(flow, "cmd").properties["fail_fast"] is False


def test_kestras_configuration_form_of_the_defaults_file(tmp_path: Path):
    file = defaults_file(tmp_path, """
        kestra:
          url: http://ignored
          plugins:
            defaults:
              - type: io.kestra.plugin.core.log.Log
                values: {message: global}
    """)
    assert task(load(flow_text("- {id: t, type: log}"), file), "t").properties == {"message": "global"}


# -- where problems point ----------------------------------------------------------------------------


def test_a_bad_value_from_the_defaults_file_points_at_its_line_there(tmp_path: Path):
    file = defaults_file(tmp_path, """
        pluginDefaults:
          - type: log
            values:
              message: fine
              level: LOUD
    """)
    found = problems(flow_text("- {id: t, type: log}"), file)
    assert found == [f"{tmp_path / 'defaults.yaml'}:5:14: `level` must be one of `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, got 'LOUD'"]


def test_problems_of_the_flows_own_defaults_point_at_their_lines():
    found = problems(flow_text("- {id: t, type: log}", """
        - type: log
          values: {mesage: typo}
        - values: {message: x}
        - type: io.kestra
          values: {type: log}
          force: true
    """))
    assert "flow.yaml:7:14: unknown property `mesage` for a `log` task in the plugin default of `log` (did you mean `message`?)" in found
    assert "flow.yaml:8:5: a plugin default needs `type`: a task type, or the start of type names (e.g. `io.kestra.plugin.scripts`)" in found
    assert "flow.yaml:10:14: a plugin default cannot set `type`" in found
    assert any(problem.startswith("flow.yaml:11:5: unknown property `force` of a plugin default (did you mean `forced`?)") for problem in found)
    assert "flow.yaml:4:5: task `t` (log) is missing `message`" in found


@pytest.mark.parametrize("text, expected", [
    ("- just a list\n", "1:1: a defaults file must be a mapping with `pluginDefaults`"),
    ("defaults: []\n", "1:1: unknown key `defaults` of a defaults file"),
    ("pluginDefaults: {type: log}\n", "1:17: `pluginDefaults` must be a list of `{type, values, forced}`"),
    ("pluginDefaults:\n  - type: log\n    values: {message: m}\n    forced: yes\n", "4:13: `forced` must be true or false, got 'yes'"),
])
def test_a_bad_defaults_file_says_where_and_what_was_expected(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "defaults.yaml"
    path.write_text(text)
    with pytest.raises(FlowError) as raised:
        load_defaults_file(path)
    assert any(str(problem).startswith(f"{path}:{expected}") for problem in raised.value.problems), raised.value.problems


# -- bounds and flows without defaults ---------------------------------------------------------------


def test_what_merging_adds_is_bounded_by_the_yaml_node_limit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TFLOW_MAX_YAML_NODES", "2000")
    tasks = "".join(f"- {{id: t{index}, type: io.kestra.plugin.core.log.Log, message: m}}\n" for index in range(60))
    values = "".join(f"    k{index}: v\n" for index in range(40))
    text = flow_text(tasks, "- type: io.kestra\n  values:\n" + values)  # 60 tasks x 41 nodes: past the 2,000
    found = problems(text)
    assert any("the plugin defaults make the flow more than 2,000 nodes" in problem for problem in found)


def test_a_flow_without_defaults_is_read_as_written():
    root = parse_yaml(flow_text("- {id: t, type: log, message: m}"), "flow.yaml")
    assert apply_defaults(root) == (root, [])
    assert apply_defaults(root)[0] is root


# -- the schema sees a flow with defaults --------------------------------------------------------------


def test_the_schema_leaves_required_properties_to_the_flows_defaults():
    validator = Draft7Validator(flow_schema())
    with_defaults = flow_text("- {id: t, type: io.kestra.plugin.core.log.Log}", LOG_DEFAULT)
    load(with_defaults)  # the loader accepts it
    assert not list(validator.iter_errors(parse_yaml(with_defaults, "flow.yaml")))
    without = flow_text("- {id: t, type: io.kestra.plugin.core.log.Log}")
    assert list(validator.iter_errors(parse_yaml(without, "flow.yaml")))
    wrong: Any = with_defaults.replace("message: from the default", "type: log")
    assert list(validator.iter_errors(parse_yaml(wrong, "flow.yaml")))  # a default cannot set `type`


def test_a_triggers_old_name_takes_the_defaults_of_its_current_one():
    flow = load(flow_text("- {id: t, type: log, message: m}", """
        - type: io.kestra.plugin.core.trigger.Schedule
          values: {timezone: Asia/Tokyo}
    """, extra="""
        triggers:
          - {id: old, type: io.kestra.core.models.triggers.types.Schedule, cron: "@daily"}
    """))
    assert flow.triggers[0]["timezone"] == "Asia/Tokyo"


def test_subflows_are_loaded_with_the_same_defaults_file(tmp_path: Path):
    from client.subflows import resolve_subflows
    from temporal_flows.language.loader import load_flow

    (tmp_path / "child.yaml").write_text("id: child\nnamespace: n\ntasks:\n  - {id: say, type: log}\n")
    parent = tmp_path / "parent.yaml"
    parent.write_text("id: parent\nnamespace: n\ntasks:\n  - {id: call, type: subflow, namespace: n, flowId: child}\n")
    file = defaults_file(tmp_path, "pluginDefaults:\n  - type: log\n    values: {message: from the file}\n")
    with pytest.raises(FlowError, match="is missing `message`"):
        resolve_subflows(load_flow(parent), [tmp_path])
    found = resolve_subflows(load_flow(parent, file), [tmp_path], file)
    assert found["n.child"]["tasks"][0]["properties"]["message"] == "from the file"
