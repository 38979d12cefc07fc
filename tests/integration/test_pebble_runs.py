"""Pebble forms rendered inside a real run (SPEC §3.6): nested for-each outputs addressed by
`[parent.taskrun.value][taskrun.value]`, a ternary, `??`, `is defined`, `| jq`, `render()`,
`flows.<step>`, `| date` in a time zone, and a jq failure that fails its task naming the expression and the reason."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from temporalio.client import Client

from temporal_flows.expressions.templates import PATCH_PEBBLE_TEMPLATES
from tests.support import run_with_history, runs_of, task_run, write_flow


async def test_nested_foreach_outputs_with_pebble_forms(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: pebble
        namespace: tests.pebble
        variables:
          greeting: "first cell {{ outputs.cell['a']['1'].value }}"
        tasks:
          - id: outer
            type: foreach
            values: ["a", "b"]
            tasks:
              - id: inner
                type: io.kestra.plugin.core.flow.ForEach
                values: ["1", "2"]
                tasks:
                  - id: cell
                    type: return
                    format: "{{ parent.taskrun.value }}{{ taskrun.value }}"
                  - id: check
                    type: return
                    format: >-
                      {{ outputs.cell[parent.taskrun.value][taskrun.value].value == parent.taskrun.value ~ taskrun.value ? 'ok' : 'bad' }}
                      {{ outputs.cell[parent.taskrun.value]['9'].value ?? 'none' }}
                      {{ taskrun.value == '1' ? (parent.taskrun.value == 'a' ? 'first' : 'a?b:c') : 'later' }}
          - id: after
            type: return
            format: >-
              {{ render(vars.greeting) }};
              {{ flows.cell['b']['2'].value }};
              {{ outputs.cell['b']['3'] is defined }}/{{ outputs.cell.b['2'].value is defined }};
              {{ outputs.cell | jq('[.[][] | .value] | join(",")') | first }};
              {{ execution.startDate | date("yyyy-MM-dd'T'HH:mmXXX", timeZone='Asia/Kolkata') }}
          - id: broken
            type: return
            allowFailure: true
            format: "{{ outputs.cell | jq('.a[] | .value.x') }}"
        """)
    result, history = await run_with_history(client, flow, worker)
    assert result["state"] == "WARNING", result["error"]
    checks = {(run["value"], tuple(run["outputs"]["value"].split())) for run in runs_of(result, "check")}
    assert checks == {
        ("1", ("ok", "none", "first")), ("2", ("ok", "none", "later")),
        ("1", ("ok", "none", "a?b:c")), ("2", ("ok", "none", "later")),
    }
    assert len(runs_of(result, "check")) == 4
    started = datetime.fromisoformat(result["started_at"].replace("Z", "+00:00")).astimezone(timezone(timedelta(hours=5, minutes=30)))
    after = task_run(result, "after")["outputs"]["value"]
    assert after == "first cell a1; b2; false/true; a1,a2,b1,b2; " + started.strftime("%Y-%m-%dT%H:%M+05:30")
    broken = task_run(result, "broken")
    assert broken["state"] == "WARNING"
    message = broken["error"]["message"]
    assert message.startswith("cannot render `{{ outputs.cell | jq('.a[] | .value.x') }}`: jq `.a[] | .value.x` failed on ")
    assert "Cannot index" in message
    markers = [event.marker_recorded_event_attributes for event in history if event.HasField("marker_recorded_event_attributes")]
    assert any(PATCH_PEBBLE_TEMPLATES.encode() in marker.details["patch-data"].SerializeToString() for marker in markers), (
        "a new run records that it renders Pebble forms, so replays of older runs keep plain Jinja2"
    )
