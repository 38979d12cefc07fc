"""SPEC §3.2 `pause` and §8 `tflow resume`, on the session's real dev server: a pause waits durably
(PAUSED in the ledger and in `tflow status`), `tflow resume` (a real subprocess) wakes it or says
why it cannot (exit 2), a duration resumes it by itself, a timeout fails it, it survives a worker
restart while paused, and pauses inside a for-each are resumed one by one or all at once (a pause
in an each_parallel is Kestra's corpus case each-parallel-pause.yml)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from client.runs import live_result, start_run, summary, wait_result
from client.worker import create_worker
from temporal_flows.language.loader import load_flow
from tests.support import REPO, cli_env, duration, run_flows, runs_of, task_ids, task_run, tflow, write_flow

WAIT_PAUSED_S = 15.0


async def tflow_cli(*args: str) -> tuple[int, str, str]:
    """One `tflow` invocation as a real process: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *tflow(*args), cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    assert "Traceback" not in stderr.decode() and "internal error" not in stderr.decode(), stderr.decode()
    return proc.returncode, stdout.decode(), stderr.decode()


async def resume(address: str, task_queue: str, run_id: str, *args: str) -> tuple[int, str, str]:
    return await tflow_cli("resume", run_id, *args, "--address", address, "--task-queue", task_queue)


async def wait_paused(handle: WorkflowHandle[Any, Any], count: int = 1) -> dict[str, Any]:
    """The run's summary once `count` task runs wait for a resume."""
    deadline = time.monotonic() + WAIT_PAUSED_S
    while True:
        current = await summary(handle)
        if len(current.get("waiting_for") or []) >= count:
            return current
        assert current["state"] in ("RUNNING", "PAUSED"), f"the run ended before pausing: {current}"
        assert time.monotonic() < deadline, f"not {count} paused within {WAIT_PAUSED_S}s: {current}"
        await asyncio.sleep(0.1)


async def start(client: Client, folder: Path, text: str, task_queue: str) -> WorkflowHandle[Any, Any]:
    return await start_run(client, load_flow(write_flow(folder, text)), task_queue=task_queue)


APPROVAL = """
id: approval
namespace: tests.pause
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: ready
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: reason
        type: STRING
      - id: approved
        type: BOOLEAN
        defaults: false
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approve.onResume.reason }}: {{ outputs.approve.onResume.approved }}"
"""


async def test_tflow_resume_wakes_a_paused_run_and_refuses_what_it_cannot(
    client: Client, worker: str, temporal_address: str, tmp_path: Path
):
    handle = await start(client, tmp_path, APPROVAL, worker)
    paused = await wait_paused(handle)
    assert paused["state"] == "PAUSED"
    [waiting] = paused["waiting_for"]
    assert waiting["task_id"] == "approve" and waiting["on_resume"] == ["reason", "approved"]
    assert waiting["resumes_at"] is None and waiting["fails_at"] is None

    status_json, status_text, wrong_task, unknown_task, unknown_input, bad_value, missing_input = await asyncio.gather(
        tflow_cli("status", handle.id, "--address", temporal_address, "--json"),
        tflow_cli("status", handle.id, "--address", temporal_address),
        resume(temporal_address, worker, handle.id, "before"),
        resume(temporal_address, worker, handle.id, "nope"),
        resume(temporal_address, worker, handle.id, "--input", "reason=ok", "--input", "colour=red"),
        resume(temporal_address, worker, handle.id, "--input", "reason=ok", "--input", "approved=maybe"),
        resume(temporal_address, worker, handle.id, "approve"),
    )
    assert status_json[0] == 0, status_json
    shown = json.loads(status_json[1])
    assert shown["state"] == "PAUSED"
    assert [(run["task_id"], run["state"]) for run in shown["task_runs"]] == [("before", "SUCCESS"), ("approve", "PAUSED")]
    assert status_text[0] == 0 and f"tflow resume {handle.id} approve --input reason=" in status_text[1], status_text
    assert wrong_task[0] == 2 and "task `before` is not paused (paused now: `approve`)" in wrong_task[2], wrong_task
    assert unknown_task[0] == 2 and "the flow has no task `nope`" in unknown_task[2], unknown_task
    assert unknown_input[0] == 2 and "unknown resume input(s) `colour`" in unknown_input[2], unknown_input
    assert bad_value[0] == 2 and "input `approved` (BOOLEAN)" in bad_value[2], bad_value
    assert missing_input[0] == 2 and "`reason`" in missing_input[2], missing_input
    assert (await wait_paused(handle))["state"] == "PAUSED"  # refused resumes changed nothing

    code, out, err = await resume(temporal_address, worker, handle.id, "approve", "--input", "reason=fine", "--input", "approved=true")
    assert code == 0, (out, err)
    assert "Resumed approve of run" in out, out
    result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result
    assert task_ids(result) == ["before", "approve", "after"]
    assert task_run(result, "approve")["outputs"] == {"onResume": {"reason": "fine", "approved": True}}
    assert task_run(result, "after")["outputs"]["value"] == "fine: true"
    assert "waiting_for" not in result

    ended, unknown_run = await asyncio.gather(
        resume(temporal_address, worker, handle.id), resume(temporal_address, worker, "no-such-run-7")
    )
    assert ended[0] == 2 and "is not paused: it has ended (COMPLETED)" in ended[2], ended
    assert unknown_run[0] == 2 and "no run 'no-such-run-7'" in unknown_run[2], unknown_run


TIMED = """
id: timed-<<name>>
namespace: tests.pause
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    <<options>>
    tasks:
      - id: inside
        type: io.kestra.plugin.core.log.Log
        message: after the pause
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


async def test_durations_resume_by_themselves_and_timeouts_fail(client: Client, worker: str, tmp_path: Path):
    variants = {
        "delay": "delay: PT1S",
        "warn": "pauseDuration: PT1S\n    behavior: WARN",
        "fail": "pauseDuration: 1s\n    behavior: FAIL",
        "timeout": "timeout: PT1S",
        "both": "pauseDuration: PT1S\n    timeout: PT30S",
    }
    flows = {name: TIMED.replace("<<name>>", name).replace("<<options>>", options) for name, options in variants.items()}
    started = time.monotonic()
    results = await run_flows(client, worker, tmp_path, flows)
    took = time.monotonic() - started
    print(f"\n[pause] five 1 s pauses at once took {took:.2f}s")
    for name, result in results.items():
        pause = task_run(result, "pause")
        print(f"[pause] {name}: {result['state']}, pause {pause['state']} after {duration(pause):.2f}s")
    assert took < 8, took

    for name in ("delay", "both"):
        result = results[name]
        assert result["state"] == "SUCCESS", result
        assert task_ids(result) == ["pause", "inside", "last"]
        assert 1.0 <= duration(task_run(result, "pause")) <= 3.5

    warned = results["warn"]
    assert warned["state"] == "WARNING" and task_run(warned, "pause")["state"] == "WARNING", warned
    assert task_ids(warned) == ["pause", "inside", "last"]

    for name, error_type in (("fail", "PauseElapsed"), ("timeout", "Timeout")):
        result = results[name]
        assert result["state"] == "FAILED", result
        assert task_ids(result) == ["pause"], "nothing runs after a failed pause"
        pause = task_run(result, "pause")
        assert pause["state"] == "FAILED" and pause["error"]["type"] == error_type, pause
        assert 1.0 <= duration(pause) <= 3.5
    assert "timeout of 1 s" in task_run(results["timeout"], "pause")["error"]["message"]


RESTART = """
id: restart
namespace: tests.pause
tasks:
  - id: before
    type: commands
    commands:
      - echo before >> <<log>>
  - id: wait
    type: pause
  - id: after
    type: commands
    commands:
      - echo after >> <<log>>
"""


async def test_a_paused_run_survives_a_worker_restart(client: Client, temporal_address: str, task_queue: str, tmp_path: Path):
    log = tmp_path / "events.log"
    async with create_worker(client, task_queue, graceful_shutdown_s=2):
        handle = await start(client, tmp_path, RESTART.replace("<<log>>", str(log)), task_queue)
        await wait_paused(handle)
    # No worker at all now; the run waits on the server. Then a new worker takes it over.
    async with create_worker(client, task_queue, graceful_shutdown_s=2):
        before_resume = time.monotonic()
        code, out, err = await resume(temporal_address, task_queue, handle.id)
        print(f"\n[pause] resume through a new worker answered in {time.monotonic() - before_resume:.2f}s")
        assert code == 0, (out, err)
        result = await asyncio.wait_for(wait_result(handle), timeout=30)
    assert result["state"] == "SUCCESS", result
    assert task_ids(result) == ["before", "wait", "after"]
    assert log.read_text().split() == ["before", "after"], "a task before the pause ran again"


EACH = """
id: each-pause
namespace: tests.pause
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    concurrencyLimit: 0
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"""


async def test_pauses_in_a_concurrent_foreach_resume_one_by_one_or_all_at_once(
    client: Client, worker: str, temporal_address: str, tmp_path: Path
):
    handle = await start(client, tmp_path, EACH, worker)
    paused = await wait_paused(handle, count=3)
    by_value = {entry["value"]: entry for entry in paused["waiting_for"]}
    assert sorted(by_value) == ["a", "b", "c"]
    assert runs_of(await live_result(handle), "after") == [], "each item's `after` waits for its pause"

    code, out, err = await resume(temporal_address, worker, handle.id, by_value["b"]["task_run_id"])
    assert code == 0 and "Resumed gate [b]" in out, (out, err)
    deadline = time.monotonic() + WAIT_PAUSED_S
    while sorted(entry["value"] for entry in (await summary(handle))["waiting_for"]) != ["a", "c"]:
        assert time.monotonic() < deadline, await summary(handle)
        await asyncio.sleep(0.1)

    code, out, err = await resume(temporal_address, worker, handle.id, "--json")
    assert code == 0, (out, err)
    assert sorted(entry["value"] for entry in json.loads(out)["resumed"]) == ["a", "c"]
    result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result
    gates = runs_of(result, "gate")
    assert sorted(run["value"] for run in gates) == ["a", "b", "c"] and all(run["state"] == "SUCCESS" for run in gates)
    assert sorted(run["outputs"]["value"] for run in runs_of(result, "after")) == ["a", "b", "c"]
    resumed_b = next(run for run in gates if run["value"] == "b")
    assert all(resumed_b["ended_at"] < run["ended_at"] for run in gates if run["value"] != "b")


async def test_cancelling_a_paused_run_cancels_the_pause(client: Client, worker: str, tmp_path: Path):
    handle = await start(client, tmp_path, EACH.replace("each-pause", "cancel-pause"), worker)
    await wait_paused(handle, count=3)
    await handle.cancel()
    result = await asyncio.wait_for(wait_result(handle), timeout=15)
    assert result["state"] == "CANCELLED", result
    assert [run["state"] for run in runs_of(result, "gate")] == ["CANCELLED"] * 3
    assert runs_of(result, "after") == []
