"""A `commands` task's processes die with the task run on a real worker, also the ones that left
its process group (`setsid`, a double fork, `nohup`, a forked subshell): when it succeeds, fails,
times out, or its run is cancelled; in both of activities.containment's modes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities import containment
from client.runs import start_run, wait_result
from temporal_flows.language.loader import load_flow
from tests.escapees import ESCAPES, escape_script, marked_sleep, stop_subreaping, wait_marked, wait_unmarked
from tests.support import task_run, write_flow


@pytest.fixture(params=("cgroup", "token"))
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "token":
        monkeypatch.setenv(containment.CGROUPS_ENV, "off")
    containment.cgroup_pool.cache_clear()
    if request.param == "cgroup" and containment.cgroup_pool() is None:
        pytest.skip("cgroup v2 is not writable here (a root worker on most Linux hosts can write it)")
    yield request.param
    containment.cgroup_pool.cache_clear()
    containment.become_subreaper.cache_clear()
    stop_subreaping()


def flow_text(flow_id: str, commands: list[str], extra: str = "") -> str:
    lines = "\n".join(f"                  - {json.dumps(line)}" for line in commands)
    return f"""
        id: {flow_id}
        namespace: tests
        tasks:
          - id: group
            type: parallel
            tasks:
              - id: escapes
                type: commands
{extra}                commands:
{lines}
              - id: sibling
                type: commands
                commands: ["echo sibling"]
        """


async def test_nothing_outlives_a_successful_task(client: Client, worker: str, mode: str, tmp_path: Path) -> None:
    sleep, marker = marked_sleep(tmp_path)
    flow = write_flow(tmp_path, flow_text("escapes-success", [*escape_script(sleep).splitlines(), "echo started"]))
    result = await wait_result(await start_run(client, load_flow(flow), task_queue=worker))
    assert result["state"] == "SUCCESS", result
    assert task_run(result, "escapes")["state"] == "SUCCESS"
    assert await asyncio.to_thread(wait_unmarked, marker) == []


async def test_nothing_outlives_a_failed_or_timed_out_task(client: Client, worker: str, mode: str,
                                                           tmp_path: Path) -> None:
    (failing_sleep, failing), (slow_sleep, slow) = marked_sleep(tmp_path), marked_sleep(tmp_path)
    flows = [write_flow(tmp_path, flow_text("escapes-fail", [*escape_script(failing_sleep).splitlines(), "exit 3"]),
                        "fail.yaml"),
             write_flow(tmp_path, flow_text("escapes-timeout", [*escape_script(slow_sleep).splitlines(), "sleep 1000"],
                                            extra="                timeout: PT2S\n"), "timeout.yaml")]
    handles = [await start_run(client, load_flow(flow), task_queue=worker) for flow in flows]
    for handle, marker in zip(handles, (failing, slow)):
        result = await wait_result(handle)
        assert result["state"] == "FAILED" and task_run(result, "escapes")["state"] == "FAILED", result
        assert await asyncio.to_thread(wait_unmarked, marker) == []


async def test_nothing_outlives_a_cancelled_run(client: Client, worker: str, mode: str, tmp_path: Path) -> None:
    sleep, marker = marked_sleep(tmp_path)
    flow = write_flow(tmp_path, flow_text("escapes-cancel", [*escape_script(sleep).splitlines(), "sleep 1000"]))
    handle = await start_run(client, load_flow(flow), task_queue=worker)
    await asyncio.to_thread(wait_marked, marker, len(ESCAPES), 20)
    await handle.cancel()
    result = await wait_result(handle)
    ended = time.monotonic()
    assert result["state"] == "CANCELLED", result
    assert task_run(result, "escapes")["state"] == "CANCELLED"
    assert await asyncio.to_thread(wait_unmarked, marker) == [], f"alive {time.monotonic() - ended:.1f}s after"
