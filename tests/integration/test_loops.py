"""`loop_until` (Kestra's LoopUntil, formerly WaitFor) on a real server: the condition after each
iteration, iterations counted on the children's task runs, `outputs` of the latest iteration and
the loop's own `iterationCount`, the durable interval between iterations, `maxIterations` and
`maxDuration` (measured from the loop's start) with and without `failOnMaxReached`, `timeout` over
the whole loop, failures, warnings and `errors`/`finally`, nesting (in a parallel, around and inside
a for-each), cancelling during the interval, and the history an iteration costs."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from client.runs import live_result, start_run, wait_result
from temporal_flows.language.loader import load_flow
from tests.support import duration, fill, run_flows, run_with_history, runs_of, task_run, write_flow

TYPES = ["io.kestra.plugin.core.flow.LoopUntil", "io.kestra.plugin.core.flow.WaitFor", "loop_until"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_between(earlier: str, later: str) -> float:
    return (at(later) - at(earlier)).total_seconds()


COUNTER = """
    id: until3
    namespace: tests.loops
    tasks:
      - id: loop
        type: <<type>>
        condition: "{{ outputs.count.vars.n >= 3 }}"
        checkFrequency: {interval: PT0.5S, maxIterations: 10}
        tasks:
          - id: count
            type: commands
            commands:
              - echo x >> <<counter>>
              - 'echo "::{\\"outputs\\":{\\"n\\":$(wc -l < <<counter>>)}}::"'
          - id: seen
            type: return
            format: "{{ outputs.loop.iterationCount }}/{{ taskrun.iteration }}/{{ outputs.count.vars.n }}"
      - id: after
        type: return
        format: "{{ outputs.loop.iterationCount }} {{ outputs.count.vars.n }} {{ outputs.seen.value }}"
"""


@pytest.mark.parametrize("type_name", TYPES)
async def test_the_condition_ends_the_loop_at_iteration_3(client: Client, worker: str, tmp_path: Path, type_name: str):
    counter = tmp_path / "counter"
    results = await run_flows(client, worker, tmp_path, {"until3": fill(COUNTER, type=type_name, counter=counter)})
    result = results["until3"]
    assert result["state"] == "SUCCESS", result["error"]
    loop = task_run(result, "loop")
    assert loop["type"] == "loop_until" and loop["outputs"] == {"iterationCount": 3}
    assert counter.read_text().count("x") == 3, "the commands ran once per iteration"
    counts, seen = runs_of(result, "count"), runs_of(result, "seen")
    assert [run["iteration"] for run in counts] == [1, 2, 3] == [run["iteration"] for run in seen]
    assert [run["outputs"]["vars"]["n"] for run in counts] == [1, 2, 3]
    assert [run["outputs"]["value"] for run in seen] == ["1/1/1", "2/2/2", "3/3/3"]
    assert all(run["parent_id"] == loop["id"] for run in counts + seen)
    assert task_run(result, "after")["outputs"]["value"] == "3 3 3/3/3", "after the loop: the latest iteration's outputs"
    for previous, following in zip(seen, counts[1:]):
        gap = seconds_between(previous["ended_at"], following["started_at"])
        assert 0.5 <= gap < 2.5, f"the interval (0.5 s) between iterations was {gap} s"


LIMITS = {
    "fails": """
        id: fails
        namespace: tests.loops
        tasks:
          - id: loop
            type: <<type>>
            condition: "{{ outputs.v.values.count == 'never' }}"
            failOnMaxReached: true
            checkFrequency: {interval: PT0.1S, maxIterations: 3}
            tasks:
              - {id: v, type: io.kestra.plugin.core.output.OutputValues, values: {count: "{{ outputs.loop.iterationCount + 1 }}"}}
            errors:
              - {id: handled, type: log, message: "{{ tasks.loop.error.message ?? 'no message' }}"}
            finally:
              - {id: closing, type: log, message: closing}
          - {id: never, type: log, message: not reached}
    """,
    "passes": """
        id: passes
        namespace: tests.loops
        tasks:
          - id: loop
            type: <<type>>
            condition: "{{ outputs.v.values.count == 'never' }}"
            checkFrequency: {interval: PT0.1S, max_iterations: 3}
            tasks:
              - {id: v, type: output_values, values: {count: "{{ outputs.loop.iterationCount + 1 }}"}}
          - {id: next, type: return, format: "{{ outputs.v.values.count }}"}
    """,
    "kestra_example": """
        id: loop_until
        namespace: company.team
        tasks:
          - id: loop
            type: <<type>>
            condition: "{{ outputs.return.value == '4' }}"
            checkFrequency: {interval: PT0.1S}
            tasks:
              - id: return
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.loop.iterationCount }}"
    """,
    "warns": """
        id: warns
        namespace: tests.loops
        tasks:
          - id: loop
            type: <<type>>
            condition: "{{ outputs.loop.iterationCount >= 2 }}"
            checkFrequency: {interval: PT0.1S}
            tasks:
              - {id: tolerated, type: fail, allowFailure: true, runIf: "{{ outputs.loop.iterationCount == 1 }}"}
              - {id: step, type: return, format: ok}
    """,
    "breaks": """
        id: breaks
        namespace: tests.loops
        tasks:
          - id: loop
            type: <<type>>
            condition: "false"
            checkFrequency: {interval: PT0.1S, maxIterations: 5}
            tasks:
              - {id: boom, type: fail, errorMessage: broken, runIf: "{{ outputs.loop.iterationCount == 2 }}"}
              - {id: step, type: return, format: "{{ taskrun.iteration }}"}
            errors:
              - {id: handled, type: log, message: handled}
            finally:
              - {id: closing, type: log, message: closing}
    """,
    "bad_condition": """
        id: bad_condition
        namespace: tests.loops
        tasks:
          - id: loop
            type: <<type>>
            condition: "{{ outputs.step.value.missing.deeper }}"
            checkFrequency: {interval: PT0.1S}
            tasks:
              - {id: step, type: return, format: text}
            finally:
              - {id: closing, type: log, message: closing}
    """,
}


@pytest.mark.parametrize("type_name", TYPES[:2])
async def test_limits_failures_and_warnings(client: Client, worker: str, tmp_path: Path, type_name: str):
    results = await run_flows(client, worker, tmp_path, {name: fill(text, type=type_name) for name, text in LIMITS.items()})

    fails = results["fails"]
    assert fails["state"] == "FAILED"
    loop = task_run(fails, "loop")
    assert loop["state"] == "FAILED" and loop["outputs"] == {"iterationCount": 3}
    assert loop["error"]["type"] == "MaxIterationsReached" and "maxIterations` (3)" in loop["error"]["message"], loop["error"]
    assert [run["outputs"]["values"]["count"] for run in runs_of(fails, "v")] == ["2", "3", "4"]
    assert [run["state"] for run in runs_of(fails, "handled") + runs_of(fails, "closing")] == ["SUCCESS", "SUCCESS"]
    assert runs_of(fails, "never") == []

    passes = results["passes"]
    assert passes["state"] == "SUCCESS", passes["error"]
    assert task_run(passes, "loop")["outputs"] == {"iterationCount": 3} and task_run(passes, "loop")["error"] is None
    assert task_run(passes, "next")["outputs"]["value"] == "4"

    example = results["kestra_example"]
    assert example["state"] == "SUCCESS" and task_run(example, "loop")["outputs"] == {"iterationCount": 4}
    assert [run["outputs"]["value"] for run in runs_of(example, "return")] == ["1", "2", "3", "4"]

    warns = results["warns"]
    assert warns["state"] == "WARNING", "a WARNING iteration does not end the loop, and stays in its state"
    assert task_run(warns, "loop")["state"] == "WARNING" and task_run(warns, "loop")["outputs"] == {"iterationCount": 2}
    assert [(run["iteration"], run["state"]) for run in runs_of(warns, "tolerated")] == [(1, "WARNING"), (2, "SKIPPED")]

    breaks = results["breaks"]
    assert breaks["state"] == "FAILED"
    loop = task_run(breaks, "loop")
    assert loop["state"] == "FAILED" and loop["outputs"] == {"iterationCount": 2} and "broken" in loop["error"]["message"]
    assert [run["iteration"] for run in runs_of(breaks, "step")] == [1], "a failed iteration stops the loop"
    assert [run["state"] for run in runs_of(breaks, "handled") + runs_of(breaks, "closing")] == ["SUCCESS", "SUCCESS"]

    bad = results["bad_condition"]
    loop = task_run(bad, "loop")
    assert bad["state"] == "FAILED" and loop["outputs"] == {"iterationCount": 1}
    assert loop["error"]["type"] == "ExpressionError" and loop["error"]["message"].startswith("`condition`: "), loop["error"]
    assert task_run(bad, "closing")["state"] == "SUCCESS"


TIMED = {
    "max_duration": """
        id: max_duration
        namespace: tests.loops
        tasks:
          - id: loop
            type: loop_until
            condition: "{{ outputs.v.values.done }}"
            failOnMaxReached: true
            checkFrequency: {interval: PT0.4S, maxDuration: PT2S}
            tasks:
              - {id: v, type: output_values, values: {done: "false"}}
    """,
    "max_duration_ok": """
        id: max_duration_ok
        namespace: tests.loops
        tasks:
          - id: loop
            type: loop_until
            condition: "{{ outputs.v.values.done }}"
            checkFrequency: {interval: 10s, maxDuration: 1500ms}
            tasks:
              - {id: v, type: output_values, values: {done: "0"}}
    """,
    "timeout": """
        id: timeout
        namespace: tests.loops
        tasks:
          - id: loop
            type: loop_until
            condition: "false"
            timeout: PT1.5S
            checkFrequency: {interval: PT0.4S, maxIterations: 100}
            tasks:
              - {id: v, type: output_values, values: {done: "no"}}
    """,
}


async def test_max_duration_and_timeout_are_measured_from_the_loops_start(client: Client, worker: str, tmp_path: Path):
    """Bounds allow the dev server's timer tick: it fires a due timer within about a second."""
    results = await run_flows(client, worker, tmp_path, TIMED)

    result = results["max_duration"]
    loop = task_run(result, "loop")
    assert result["state"] == "FAILED" and loop["error"]["type"] == "MaxDurationReached", loop["error"]
    assert 2.0 <= duration(loop) < 3.4, f"maxDuration PT2S ended the loop after {duration(loop)} s"
    last_start = seconds_between(loop["started_at"], runs_of(result, "v")[-1]["started_at"])
    assert 2.0 <= last_start < 3.4, f"the last iteration starts when maxDuration ends ({last_start} s)"
    assert 2 <= loop["outputs"]["iterationCount"] == len(runs_of(result, "v")) <= 6

    ok = results["max_duration_ok"]
    loop = task_run(ok, "loop")
    assert ok["state"] == "SUCCESS" and loop["outputs"] == {"iterationCount": 2}, "the 10 s interval is cut at 1.5 s"
    assert 1.5 <= duration(loop) < 2.9, duration(loop)

    timed_out = results["timeout"]
    loop = task_run(timed_out, "loop")
    assert timed_out["state"] == "FAILED" and loop["error"]["type"] == "Timeout", loop["error"]
    assert "loop `loop` timed out after 1.5 s" in loop["error"]["message"]
    assert 1.5 <= duration(loop) < 2.9, f"a 1.5 s timeout over the whole loop ended it after {duration(loop)} s"


NESTED = {
    "in_parallel": """
        id: in_parallel
        namespace: tests.loops
        tasks:
          - id: both
            type: parallel
            tasks:
              - id: loop
                type: io.kestra.plugin.core.flow.LoopUntil
                condition: "{{ outputs.item['b'].value == 'b2' and outputs.loop.iterationCount >= 2 }}"
                checkFrequency: {interval: PT0.2S, maxIterations: 5}
                tasks:
                  - id: each
                    type: foreach
                    values: [a, b]
                    tasks:
                      - {id: item, type: return, format: "{{ taskrun.value }}{{ outputs.loop.iterationCount }}"}
              - id: beside
                type: commands
                commands: ["sleep 2"]
          - {id: after, type: return, format: "{{ outputs.item['a'].value }} {{ outputs.loop.iterationCount }}"}
    """,
    "in_foreach": """
        id: in_foreach
        namespace: tests.loops
        tasks:
          - id: each
            type: foreach
            values: [x, y]
            concurrencyLimit: 2
            tasks:
              - id: loop
                type: loop_until
                condition: "{{ currentEachOutput(outputs.loop).iterationCount >= (2 if taskrun.value == 'x' else 3) }}"
                checkFrequency: {interval: PT0.1S, maxIterations: 5}
                tasks:
                  - {id: step, type: return, format: "{{ taskrun.value }}-{{ taskrun.iteration }}"}
    """,
}


async def test_a_loop_in_a_parallel_around_a_foreach_and_loops_inside_a_foreach(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, NESTED)

    result = results["in_parallel"]
    assert result["state"] == "SUCCESS", result["error"]
    loop = task_run(result, "loop")
    assert loop["outputs"] == {"iterationCount": 2}
    assert [(run["iteration"], run["parent_id"]) for run in runs_of(result, "each")] == [(1, loop["id"]), (2, loop["id"])]
    assert [(run["value"], run["outputs"]["value"]) for run in runs_of(result, "item")] == [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2")]
    assert [run["iteration"] for run in runs_of(result, "item")] == [0, 1, 0, 1], "a for-each's items count their own"
    assert task_run(result, "after")["outputs"]["value"] == "a2 2"
    assert runs_of(result, "item")[2]["started_at"] < task_run(result, "beside")["ended_at"], "the loop runs beside its sibling"

    result = results["in_foreach"]
    assert result["state"] == "SUCCESS", result["error"]
    loops = {run["value"]: run for run in runs_of(result, "loop")}
    assert loops["x"]["outputs"] == {"iterationCount": 2} and loops["y"]["outputs"] == {"iterationCount": 3}
    steps = sorted(run["outputs"]["value"] for run in runs_of(result, "step"))
    assert steps == ["x-1", "x-2", "y-1", "y-2", "y-3"]


async def test_cancelling_during_the_interval_ends_the_run_promptly(client: Client, worker: str, tmp_path: Path):
    path = write_flow(tmp_path, """
        id: cancel_loop
        namespace: tests.loops
        tasks:
          - id: loop
            type: loop_until
            condition: "false"
            checkFrequency: {interval: PT1H}
            tasks:
              - {id: step, type: commands, commands: ["true"]}
            finally:
              - {id: closing, type: log, message: closing}
          - {id: never, type: log, message: not reached}
    """)
    handle = await start_run(client, load_flow(path), task_queue=worker)
    deadline = time.monotonic() + 30
    while not [run for run in runs_of(await live_result(handle), "step") if run["state"] == "SUCCESS"]:
        assert time.monotonic() < deadline, "the first iteration did not end"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # the loop is in its hour-long interval
    cancelled_at = time.monotonic()
    await handle.cancel()
    result = await asyncio.wait_for(wait_result(handle), timeout=30)
    took = time.monotonic() - cancelled_at
    assert result["state"] == "CANCELLED", result
    assert task_run(result, "loop")["state"] == "CANCELLED"
    assert len(runs_of(result, "step")) == 1 and task_run(result, "closing")["state"] == "SUCCESS"
    assert runs_of(result, "never") == []
    assert took < 5, f"cancelling during the interval took {took} s"


def loop_flow(iterations: int) -> str:
    return f"""
        id: cost{iterations}
        namespace: tests.loops
        tasks:
          - id: loop
            type: loop_until
            condition: "false"
            checkFrequency: {{interval: PT0.05S, maxIterations: {iterations}}}
            tasks:
              - {{id: step, type: commands, commands: ["true"]}}
              - {{id: pure, type: return, format: "{{{{ taskrun.iteration }}}}"}}
    """


async def test_an_iteration_costs_a_few_history_events(client: Client, worker: str, tmp_path: Path):
    """An iteration with one activity: its three events, the timer's two, two workflow tasks' six (5 + 6 per activity)."""
    runs: dict[int, tuple[dict[str, Any], list[Any]]] = {}
    for iterations in (1, 6):
        path = write_flow(tmp_path, loop_flow(iterations), f"cost{iterations}.yaml")
        runs[iterations] = await run_with_history(client, path, worker)
    assert all(result["state"] == "SUCCESS" for result, _ in runs.values())
    per_iteration = (len(runs[6][1]) - len(runs[1][1])) / 5
    assert per_iteration <= 12, f"{per_iteration} history events per iteration (11 when measured)"
