"""Templates have a bounded cost on a real server and worker (issue 14 A): each reproduction of the
issue, as a flow task, fails that task with its error type within seconds, while a normal flow
started beside it on the same worker and task queue finishes on time.

Before: the jq program pinned the worker at 100% CPU inside jq (every run on it stalled, every
worker picking the run up froze too), `7 ** 30000000` held the GIL for ~40 s, and the nested loops
tripped the deadlock detector so the workflow task was retried forever with the run RUNNING.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.render import RENDER_TIME_LIMIT_S
from temporal_flows.expressions.library import PATCH_JQ_ON_WORKER
from tests.support import duration, fill, run_flow, run_with_history, runs_of, task_run, write_flow

NOMINAL_S = 2.0
"""How long the normal flow's one task sleeps."""
SLACK_S = 2.5
"""What a busy machine (other test sessions beside this one) may add to it; a frozen worker adds
tens of seconds (`7 ** 30000000`: ~40 s) or forever (the jq program)."""
CHILD_START_S = 5.0
"""What starting the worker's render process may take on a busy machine (not counted in the jq limit)."""

NORMAL = f"""
id: normal
namespace: tests.bounds
tasks:
  - id: nap
    type: commands
    commands: ["sleep {NOMINAL_S}"]
"""

HOSTILE = """
id: hostile
namespace: tests.bounds
tasks:
  - id: bomb
    type: return
    format: "<<template>>"
  - id: never
    type: return
    format: "not reached"
"""

CASES = {
    "jq": ("{{ 0 | jq('last(range(1e12))') }}", "Timeout", f"rendering took more than {RENDER_TIME_LIMIT_S:g} s",
           RENDER_TIME_LIMIT_S + CHILD_START_S + 2.0),
    "power": ("{{ (7 ** 30000000) > 1 }}", "TemplateBudgetExceeded", "has over 10,000 bits", 5.0),
    "loops": ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "TemplateBudgetExceeded",
              "more than 100,000 loop iterations and calls in one render", 5.0),
    "repeat": ("{{ 'a' * 1000000000 }}", "TemplateBudgetExceeded", "repeating into 1,000,000,000 characters", 5.0),
}


async def run_beside_normal(client: Client, worker: str, tmp_path: Path, hostile: str) -> tuple[dict, dict, list, float]:
    """Start the hostile flow and the normal one together on the same worker: both results, the
    hostile run's history, and the wall-clock seconds from its start to its result (in workflow
    time a render takes no time at all)."""
    normal_path = write_flow(tmp_path, NORMAL, "normal.yaml")
    hostile_path = write_flow(tmp_path, hostile, "hostile.yaml")

    async def timed() -> tuple[dict, list, float]:
        started = time.monotonic()
        result, events = await run_with_history(client, hostile_path, worker)
        return result, events, time.monotonic() - started

    (hostile_result, events, took), normal_result = await asyncio.gather(timed(), run_flow(client, normal_path, worker))
    return hostile_result, normal_result, events, took


def assert_normal_on_time(normal: dict) -> None:
    assert normal["state"] == "SUCCESS", normal["error"]
    took = duration(task_run(normal, "nap"))
    print(f"normal flow's task: {took:.2f} s (nominal {NOMINAL_S} s)")
    assert NOMINAL_S <= took < NOMINAL_S + SLACK_S, f"the normal flow's task took {took:.2f} s beside the hostile one"


@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_template_fails_its_task_while_a_normal_flow_runs_on_time(client: Client, worker: str, tmp_path: Path, case: str):
    template, error_type, message, within = CASES[case]
    hostile, normal, events, took = await run_beside_normal(client, worker, tmp_path, fill(HOSTILE, template=template.replace('"', '\\"')))
    assert hostile["state"] == "FAILED"
    bomb = task_run(hostile, "bomb")
    assert bomb["state"] == "FAILED"
    assert bomb["error"]["type"] == error_type, bomb["error"]
    assert message in bomb["error"]["message"] and template in bomb["error"]["message"], bomb["error"]["message"]
    assert took < within, f"{case}: the run ended {took:.2f} s after its start"
    print(f"{case}: the run ended {took:.2f} s after its start")
    assert runs_of(hostile, "never") == []
    assert_normal_on_time(normal)
    markers = b"".join(event.SerializeToString() for event in events if event.HasField("marker_recorded_event_attributes"))
    assert (PATCH_JQ_ON_WORKER.encode() in markers) == (case == "jq"), "only a run that uses jq records the patch"


async def test_a_hostile_template_in_a_foreach_in_a_parallel_fails_each_item_and_the_siblings_finish(
    client: Client, worker: str, tmp_path: Path,
):
    hostile = """
        id: hostile
        namespace: tests.bounds
        tasks:
          - id: par
            type: parallel
            tasks:
              - id: loop
                type: foreach
                values: [1, 2]
                tasks:
                  - id: bomb
                    type: return
                    format: "{% for a in range(100000) %}{% for b in range(2) %}{% endfor %}{% endfor %}"
                  - id: after_bomb
                    type: return
                    format: "not reached"
              - id: sibling
                type: return
                format: "fine {{ 1 + 1 }}"
        """
    result, normal, _, took = await run_beside_normal(client, worker, tmp_path, hostile)
    assert result["state"] == "FAILED"
    bombs = runs_of(result, "bomb")
    assert [run["error"]["type"] for run in bombs] == ["TemplateBudgetExceeded"], "the for-each stops at its first failed item"
    assert all("more than 100,000 loop iterations" in run["error"]["message"] for run in bombs), [run["error"] for run in bombs]
    assert took < 5.0, f"the run ended {took:.2f} s after its start"
    assert runs_of(result, "after_bomb") == []
    assert task_run(result, "sibling")["outputs"]["value"] == "fine 2"
    assert_normal_on_time(normal)


async def test_jq_under_its_time_limit_renders_on_a_worker(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: jqok
        namespace: tests.bounds
        tasks:
          - id: each
            type: foreach
            values: ["a", "b"]
            tasks:
              - id: item
                type: return
                format: "{{ {'v': taskrun.value} | jq('.v + \\"!\\"') | first }}"
          - id: after
            type: return
            format: "{{ outputs.item | jq('[.[] | .value] | join(\\",\\")') | first }}"
        """)
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS", result["error"]
    assert sorted(run["outputs"]["value"] for run in runs_of(result, "item")) == ["a!", "b!"]
    assert task_run(result, "after")["outputs"]["value"] == "a!,b!"
