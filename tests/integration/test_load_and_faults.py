"""The engine under load and faults (issue 5) on a real server: errors end, cancellation is prompt
and bounded, ordering is not a concurrency limit, races are won by real successes, the run-wide cap
on pending activities holds, and payloads stay bounded however big the ledger grows."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from temporalio.client import Client

from temporal_flows.language.loader import load_flow
from temporal_flows.metadata import LEDGER_PAGE_BYTES
from client.runs import live_task_runs, recorded_run, recorded_task_runs, start_run, wait_result
from tests.support import duration, peak_concurrency, pid_alive, run_flow, task_run, wait_until, write_flow

SPAN = 'echo start $(date +%s.%N) >> {log}; sleep {seconds}; echo end $(date +%s.%N) >> {log}'


async def test_unexpected_activity_error_fails_the_task_once_within_seconds(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: nulbyte
        namespace: tests
        tasks:
          - id: broken_env
            type: commands
            env:
              BAD: "a\\u0000b"
            commands: ["true"]
        """)
    started = time.monotonic()
    result = await asyncio.wait_for(run_flow(client, flow, worker), timeout=20)
    assert time.monotonic() - started < 5, "an unexpected error must not be retried"
    broken = task_run(result, "broken_env")
    assert result["state"] == "FAILED"
    assert broken["state"] == "FAILED"
    assert "ValueError" in broken["error"]["message"] and "null byte" in broken["error"]["message"]


async def test_parallel_inside_sequential_overlaps_its_children(client: Client, worker: str, tmp_path: Path):
    log = tmp_path / "spans.log"
    children = "".join(
        f"\n                  - {{id: c{index}, type: commands, commands: [\"{SPAN.format(log=log, seconds=1)}\"]}}"
        for index in range(3)
    )
    flow = write_flow(tmp_path, f"""
        id: nested
        namespace: tests
        tasks:
          - id: outer
            type: sequential
            tasks:
              - id: inner
                type: parallel
                concurrent: 3
                tasks:{children}
        """)
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS"
    assert peak_concurrency(log) == 3, "the sequential's ordering became the parallel's concurrency limit"
    assert duration(task_run(result, "inner")) < 2.5


async def test_race_is_won_only_by_a_real_success_and_names_its_winner(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: realrace
        namespace: tests
        tasks:
          - id: race
            type: parallel
            strategy: race
            tasks:
              - {id: off, type: commands, disabled: true, commands: ["true"]}
              - {id: skipped, type: return, runIf: "{{ false }}", format: x}
              - {id: tolerated, type: commands, allowFailure: true, commands: ["exit 1"]}
              - id: real
                type: commands
                commands: ["sleep 0.5", "echo '::{\\"outputs\\": {\\"who\\": \\"real\\"}}::'"]
          - id: after
            type: return
            format: "{{ tasks.race.winner }} {{ outputs.race.winner }} {{ tasks.race.output.vars.who }}"
        """)
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS"
    race = task_run(result, "race")
    assert race["state"] == "SUCCESS"
    assert race["outputs"] == {"winner": "real"}
    assert task_run(result, "tolerated")["state"] == "WARNING"
    assert task_run(result, "skipped")["state"] == "SKIPPED"
    assert task_run(result, "after")["outputs"]["value"] == "real real real"


async def test_best_effort_counts_only_real_successes_toward_min_success(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: besteffort
        namespace: tests
        tasks:
          - id: group
            type: parallel
            strategy: best_effort
            min_success: 1
            tasks:
              - {id: skipped, type: return, runIf: "{{ false }}", format: x}
              - {id: tolerated, type: commands, allowFailure: true, commands: ["exit 1"]}
              - {id: broken, type: commands, commands: ["exit 2"]}
        """)
    result = await run_flow(client, flow, worker)
    assert task_run(result, "group")["state"] == "FAILED"
    assert result["error"]["task_id"] == "broken"


async def test_fail_fast_resolves_within_3s_and_the_sibling_process_is_gone(client: Client, worker: str, tmp_path: Path):
    pid_file = tmp_path / "slow.pid"
    flow = write_flow(tmp_path, f"""
        id: promptcancel
        namespace: tests
        tasks:
          - id: group
            type: parallel
            strategy: fail_fast
            tasks:
              - id: slow
                type: commands
                commands: ["sleep 30 & echo $! > {pid_file}; wait $!"]
              - id: broken
                type: commands
                commands: ["sleep 0.5", "exit 3"]
        """)
    result = await run_flow(client, flow, worker)
    group = task_run(result, "group")
    assert group["state"] == "FAILED"
    assert task_run(result, "slow")["state"] == "CANCELLED"
    assert duration(group) < 3, f"fail_fast took {duration(group):.2f}s to resolve"
    assert not pid_alive(int(pid_file.read_text())), "the cancelled sibling's process outlived the group"


async def test_group_timeout_resolves_within_3s_and_names_the_group(client: Client, worker: str, tmp_path: Path):
    pid_file = tmp_path / "slow.pid"
    flow = write_flow(tmp_path, f"""
        id: grouptimeout
        namespace: tests
        tasks:
          - id: outer
            type: sequential
            tasks:
              - id: limited
                type: parallel
                timeout: PT1S
                tasks:
                  - id: slow
                    type: commands
                    commands: ["sleep 30 & echo $! > {pid_file}; wait $!"]
        """)
    result = await run_flow(client, flow, worker)
    limited = task_run(result, "limited")
    assert limited["state"] == "FAILED"
    assert limited["error"]["type"] == "Timeout"
    assert limited["error"]["task_id"] == "limited"
    assert result["error"]["task_id"] == "limited"
    assert 1 <= duration(limited) < 3, f"a PT1S group timeout took {duration(limited):.2f}s"
    assert not pid_alive(int(pid_file.read_text()))


async def test_run_wide_cap_on_pending_tasks(client: Client, worker: str, tmp_path: Path):
    log = tmp_path / "spans.log"
    children = "".join(
        f"\n              - {{id: c{index}, type: commands, commands: [\"{SPAN.format(log=log, seconds=0.4)}\"]}}"
        for index in range(6)
    )
    flow = write_flow(tmp_path, f"""
        id: capped
        namespace: tests
        tasks:
          - id: group
            type: parallel
            tasks:{children}
        """)
    result = await run_flow(client, flow, worker, max_pending_tasks=2)
    assert result["state"] == "SUCCESS"
    assert peak_concurrency(log) == 2
    assert len(result["task_runs"]) == 7


async def test_result_stays_bounded_and_the_ledger_is_read_in_pages(client: Client, worker: str, tmp_path: Path):
    blob = "x" * 10_000
    children = "".join(
        f"""\n              - {{id: c{index}, type: commands, commands: ["echo '::{{\\"outputs\\": {{\\"blob\\": \\"{blob}\\"}}}}::'"]}}"""
        for index in range(40)
    )
    flow = write_flow(tmp_path, f"""
        id: bigledger
        namespace: tests
        tasks:
          - id: group
            type: parallel
            concurrent: 20
            tasks:{children}
        """)
    handle = await start_run(client, load_flow(flow), task_queue=worker)
    raw = await handle.result()
    assert "task_runs" not in raw and raw["task_run_count"] == 41
    assert len(json.dumps(raw)) < 4_000, "the workflow result must not grow with the ledger"

    recorded = await recorded_task_runs(handle)  # from the history alone: no worker, no replay
    assert recorded is not None and len(recorded) == 41
    assert len(json.dumps(recorded)) > LEDGER_PAGE_BYTES, "the ledger should span several pages"
    assert recorded == await live_task_runs(handle)
    assert all(run["outputs"]["vars"]["blob"] == blob for run in recorded if run["task_id"] != "group")
    full = await wait_result(handle)
    assert full["task_runs"] == recorded and full["state"] == "SUCCESS"


async def test_a_cancelled_run_keeps_its_summary_and_ledger_in_its_history(client: Client, worker: str, tmp_path: Path):
    pid_file = tmp_path / "wait.pid"
    flow = write_flow(tmp_path, f"""
        id: cancelme
        namespace: tests
        tasks:
          - id: wait
            type: commands
            commands: ["sleep 30 & echo $! > {pid_file}; wait $!"]
        """)
    handle = await start_run(client, load_flow(flow), task_queue=worker)
    assert await asyncio.to_thread(wait_until, lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
    started = time.monotonic()
    await handle.cancel()
    result = await wait_result(handle)
    assert time.monotonic() - started < 3, "the cancellation should reach the task within about a second"
    assert result["state"] == "CANCELLED"
    assert task_run(result, "wait")["state"] == "CANCELLED"
    assert not pid_alive(int(pid_file.read_text()))
    summary, task_runs = await recorded_run(handle)  # the history alone: no worker needed
    assert summary is not None and summary["state"] == "CANCELLED"
    assert task_runs == result["task_runs"]
