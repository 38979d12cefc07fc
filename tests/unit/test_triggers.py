"""Trigger declarations (SPEC §5): checked while the flow is read, each problem at its line; a
Schedule's Kestra properties mapped onto a Temporal Schedule; `tflow deploy` refusing what cannot
be deployed before it needs a server. (Deploying on a server: tests/integration/test_schedules.py.)"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from temporal_flows.language.cron import CronError, temporal_cron
from temporal_flows.language.loader import load_flow_text
from temporal_flows.language.triggers import MIN_CATCHUP_WINDOW_S, schedule_id, schedule_of
from temporal_flows.model.problems import FlowError
from tests.support import REPO, cli_env, tflow, write_flow

FLOW = """\
id: nightly
namespace: tests.triggers
inputs:
  - id: greeting
    type: STRING
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.greeting }}"
triggers:
"""
"""A flow whose `triggers:` key is on line 10 (line 11 is the first entry's `- id`)."""


def with_triggers(block: str) -> str:
    return FLOW + textwrap.indent(textwrap.dedent(block).strip("\n"), "  ") + "\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "flow.yaml")
    return [str(problem) for problem in raised.value.problems]


# -- cron expressions ----------------------------------------------------------------------------

@pytest.mark.parametrize("expression, expected", [
    ("* * * * *", "* * * * *"),
    ("*/15  9-17 * * MON-FRI", "*/15 9-17 * * MON-FRI"),
    ("0 6 1,15 JAN-jun *", "0 6 1,15 JAN-jun *"),
    ("0 0 * * 7", "0 0 * * 7"),
    ("@hourly", "0 * * * *"),
    ("@annually", "0 0 1 1 *"),
    ("@midnight", "0 0 * * *"),
])
def test_cron_expressions_temporal_reads_the_same(expression, expected):
    assert temporal_cron(expression) == expected


def test_cron_with_seconds_gains_a_year_field_for_temporal():
    assert temporal_cron("*/10 * * * * *", with_seconds=True) == "*/10 * * * * * *"
    assert temporal_cron("@daily", with_seconds=True) == "0 0 0 * * * *"


@pytest.mark.parametrize("expression, said", [
    ("61 * * * *", "minute `61`: 61 is out of range 0–59"),
    ("* * * *", "has 5 fields"),
    ("0 0 * * 8", "day of week `8`: 8 is out of range 0–7"),
    ("0 0 L * *", "`L` (last day) is not supported"),
    ("0 0 * * 1#2", "`#` (nth weekday of the month) is not supported"),
    ("0 0 ? * *", "`?` is not Unix cron"),
    ("5-2 * * * *", "the range `5-2` goes backwards"),
    ("*/0 * * * *", "the step after `/` must be a whole number ≥ 1"),
    ("0 0 1 * MON", "restricts both the day of month and the day of week"),
    ("@reboot", "unknown cron shorthand `@reboot`"),
    ("0 0 * FOO *", "month `FOO`: expected a number 1–12 or a name (JAN–DEC)"),
])
def test_cron_expressions_temporal_would_refuse_or_misread_are_errors(expression, said):
    with pytest.raises(CronError) as raised:
        temporal_cron(expression)
    assert said in str(raised.value)


# -- declarations, checked while the flow is read -------------------------------------------------

def test_a_schedule_with_every_mapped_property_loads():
    loaded = load_flow_text(with_triggers("""
        - id: every-quarter
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "*/15 * * * *"
          timezone: Europe/Paris
          inputs: {greeting: hello}
          disabled: true
          lateMaximumDelay: PT5M
          recoverMissedSchedules: ALL
          stopAfter: [FAILED]
          labels: {team: data}
          description: every quarter hour
        - id: seconds
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "*/30 * * * * *"
          withSeconds: true
    """), "flow.yaml")
    quarter, seconds = (schedule_of(trigger) for trigger in loaded.flow.triggers)
    assert (quarter.temporal_cron, quarter.timezone, quarter.inputs) == ("*/15 * * * *", "Europe/Paris", {"greeting": "hello"})
    assert quarter.paused and quarter.pause_on_failure
    assert quarter.catchup_window_s == 300.0
    assert quarter.labels == {"team": "data"}
    assert seconds.temporal_cron == "*/30 * * * * * *"
    assert not seconds.paused and seconds.catchup_window_s is None  # Temporal's default: recover every missed time


def test_recovering_no_missed_schedule_is_the_smallest_catchup_window():
    loaded = load_flow_text(with_triggers("""
        - id: s
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "@daily"
          recoverMissedSchedules: NONE
          lateMaximumDelay: PT1H
    """), "flow.yaml")
    assert schedule_of(loaded.flow.triggers[0]).catchup_window_s == MIN_CATCHUP_WINDOW_S


def test_bad_cron_and_bad_timezone_name_their_line_and_column():
    found = problems_of(with_triggers("""
        - id: s
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "61 * * * *"
          timezone: Mars/Olympus
    """))
    assert found == [
        "flow.yaml:13:11: Schedule trigger `s`: `cron`: minute `61`: 61 is out of range 0–59",
        "flow.yaml:14:15: Schedule trigger `s`: `timezone` must be an IANA time zone name like `Europe/Paris` or `UTC`, got 'Mars/Olympus'",
    ]


def test_schedule_properties_without_a_temporal_equivalent_are_problems():
    found = problems_of(with_triggers("""
        - id: s
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "@daily"
          recoverMissedSchedules: LAST
          backfill: {start: "2024-01-01T00:00:00Z"}
          conditions: [{type: io.kestra.plugin.core.condition.DayWeek, dayOfWeek: MONDAY}]
          stopAfter: [SUCCESS]
          cronn: "x"
    """))
    assert len(found) == 5
    assert "flow.yaml:14:29: Schedule trigger `s`: `recoverMissedSchedules` must be `ALL` or `NONE` (`LAST` has no Temporal equivalent" in found[0]
    assert found[1].startswith("flow.yaml:15:5: Schedule trigger `s`: `backfill` is not supported (") and "temporal schedule backfill" in found[1]
    assert found[2].startswith("flow.yaml:16:5: Schedule trigger `s`: `conditions` is not supported (")
    assert found[3].startswith("flow.yaml:17:16: Schedule trigger `s`: `stopAfter` must be `[FAILED]`")
    assert found[4] == "flow.yaml:18:5: Schedule trigger `s`: unknown property `cronn` (did you mean `cron`?)"


def test_schedule_without_cron_missing_types_and_duplicate_ids():
    found = problems_of(with_triggers("""
        - id: s
          type: io.kestra.plugin.core.trigger.Schedule
        - id: s
          type: io.kestra.plugin.core.trigger.Webhook
          key: abc
        - id: t
    """))
    assert found == [
        "flow.yaml:11:5: Schedule trigger `s` is missing `cron`",
        "flow.yaml:13:9: duplicate trigger id `s` (first defined at line 11)",
        "flow.yaml:16:5: trigger `t` is missing `type` (e.g. `io.kestra.plugin.core.trigger.Schedule`)",
    ]


def test_other_trigger_types_load_with_any_properties():
    loaded = load_flow_text(with_triggers("""
        - id: after-upstream
          type: io.kestra.plugin.core.trigger.Flow
          conditions:
            - type: io.kestra.plugin.core.condition.ExecutionFlow
              namespace: tests
              flowId: upstream
    """), "flow.yaml")
    assert loaded.flow.triggers[0]["type"] == "io.kestra.plugin.core.trigger.Flow"


def test_schedule_ids_are_namespace_flow_and_trigger():
    assert schedule_id("company.team", "nightly", "every-day") == "company.team.nightly.every-day"


# -- the CLI, before any server ------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tflow(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)


WEBHOOK = """
    - id: hook
      type: io.kestra.plugin.core.trigger.Webhook
      key: abc
    - id: daily
      type: io.kestra.plugin.core.trigger.Schedule
      cron: "@daily"
      inputs: {greeting: hi}
"""


def test_validate_accepts_any_trigger_type_and_deploy_refuses_it_naming_the_type(tmp_path: Path):
    flow = write_flow(tmp_path, with_triggers(WEBHOOK))
    validated = run_cli("validate", str(flow))
    assert validated.returncode == 0, validated.stderr
    deployed = run_cli("deploy", str(flow), "--address", "127.0.0.1:1")
    assert deployed.returncode == 2, deployed.stderr
    assert f"{flow}:11:5: trigger `hook` has type `io.kestra.plugin.core.trigger.Webhook`, which cannot be deployed" in deployed.stderr
    assert "Traceback" not in deployed.stderr


def test_deploy_refuses_trigger_inputs_that_do_not_fit_and_needs_an_address(tmp_path: Path):
    bad_inputs = write_flow(tmp_path, with_triggers("""
        - id: daily
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "@daily"
          inputs: {greting: hi}
    """), "bad.yaml")
    refused = run_cli("deploy", str(bad_inputs), "--address", "127.0.0.1:1")
    assert refused.returncode == 2, refused.stderr
    assert f"{bad_inputs}:11:5: Schedule trigger `daily`, `inputs`: " in refused.stderr
    assert "greeting" in refused.stderr and "greting" in refused.stderr
    good = write_flow(tmp_path, with_triggers("""
        - id: daily
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "@daily"
          inputs: {greeting: hi}
    """), "good.yaml")
    no_address = run_cli("deploy", str(good))
    assert no_address.returncode == 2, no_address.stderr
    assert "deploy needs a Temporal server that outlives this command" in no_address.stderr
