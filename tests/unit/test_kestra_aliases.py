"""Every type name Kestra still accepts: its alias list (`temporal_flows/tasks/kestra_aliases.py`,
from the `@Plugin(aliases = ...)` annotations of Kestra's core classes) walked entry by entry. An
alias of a type we run resolves to that type and loads as it; one of a type we do not run is an
unknown type, with the closest name we know; the registry's old names are all Kestra's."""

from __future__ import annotations

import textwrap

import pytest

from temporal_flows.language.loader import load_flow_text
from temporal_flows.language.triggers import is_schedule
from temporal_flows.model.problems import FlowError
from temporal_flows.tasks import TYPES, resolve_type
from temporal_flows.tasks.kestra_aliases import KESTRA_ALIASES, PRE_017_WITHOUT_ALIAS, RESPELLED

TRIGGERS = {alias: current for alias, current in KESTRA_ALIASES.items() if ".trigger" in current.lower() and "Toggle" not in current}
TASKS = {alias: current for alias, current in KESTRA_ALIASES.items() if alias not in TRIGGERS}
SUPPORTED = {alias: current for alias, current in {**TASKS, **PRE_017_WITHOUT_ALIAS}.items() if resolve_type(current) is not None}
UNSUPPORTED = {alias: current for alias, current in TASKS.items() if resolve_type(current) is None}


def one_task_flow(type_name: str) -> str:
    return f"id: f\nnamespace: n\ntasks:\n  - id: t\n    type: {type_name}\n"


def test_the_list_covers_kestras_core_flowables_and_both_halves_are_walked():
    assert len(SUPPORTED) >= 17 and len(UNSUPPORTED) >= 15
    assert {"io.kestra.core.tasks.flows.Parallel", "io.kestra.core.tasks.flows.Flow", "io.kestra.plugin.fs.http.Request"} <= set(SUPPORTED)


@pytest.mark.parametrize("alias, current", sorted(SUPPORTED.items()))
def test_an_alias_of_a_supported_type_resolves_to_it(alias: str, current: str):
    assert resolve_type(alias) is resolve_type(current)


@pytest.mark.parametrize("alias, current", sorted(UNSUPPORTED.items()))
def test_an_alias_of_an_unsupported_type_is_an_unknown_type_with_a_hint(alias: str, current: str):
    assert resolve_type(alias) is None
    with pytest.raises(FlowError) as raised:
        load_flow_text(one_task_flow(alias), "flow.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.column) == (5, 11)
    assert problem.message.startswith(f"unknown task type `{alias}` (did you mean `"), problem.message


def test_every_old_name_in_the_registry_is_kestras():
    old = {name for task_type in TYPES for name in task_type.aliases
           if name.startswith("io.kestra.core.") or name.startswith("io.kestra.plugin.fs.")}
    unexplained = old - set(KESTRA_ALIASES) - set(PRE_017_WITHOUT_ALIAS) - set(RESPELLED) - {"io.kestra.core.tasks.http.Request"}
    assert not unexplained


@pytest.mark.parametrize("alias", sorted(TRIGGERS))
def test_the_schedule_triggers_old_name_is_a_schedule(alias: str):
    assert is_schedule({"type": alias}) is TRIGGERS[alias].endswith(".Schedule")


def test_a_flow_in_pre_017_names_loads_as_the_current_one():
    old = """
        id: old
        namespace: n
        tasks:
          - id: seq
            type: io.kestra.core.tasks.flows.Sequential
            tasks:
              - {id: each, type: io.kestra.core.tasks.flows.EachSequential, value: '["a"]',
                 tasks: [{id: ret, type: io.kestra.core.tasks.debugs.Return, format: "{{ taskrun.value }}"}]}
              - {id: out, type: io.kestra.core.tasks.outputs.OutputValues, values: {k: v}}
              - {id: say, type: io.kestra.core.tasks.log.Log, message: hi}
              - {id: shell, type: io.kestra.plugin.scripts.shell.Script, script: "echo hi"}
        errors:
          - {id: fail, type: io.kestra.core.tasks.executions.Fail}
    """
    current = (old.replace("io.kestra.core.tasks.flows.", "io.kestra.plugin.core.flow.")
               .replace("io.kestra.core.tasks.debugs.", "io.kestra.plugin.core.debug.")
               .replace("io.kestra.core.tasks.outputs.", "io.kestra.plugin.core.output.")
               .replace("io.kestra.core.tasks.log.", "io.kestra.plugin.core.log.")
               .replace("io.kestra.core.tasks.executions.", "io.kestra.plugin.core.execution.")
               .replace("type: io.kestra.plugin.scripts.shell.Script, script: \"echo hi\"",
                        "type: io.kestra.plugin.scripts.shell.Commands, commands: [\"echo hi\"]"))
    assert old != current
    flows = [load_flow_text(textwrap.dedent(text), "flow.yaml").flow for text in (old, current)]
    assert flows[0].to_input() == flows[1].to_input()
