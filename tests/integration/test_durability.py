"""SPEC §7 durability on real processes: a worker killed with SIGKILL mid-task, and the dev server
stopped and restarted on the same SQLite file mid-run. Both runs must finish."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

from temporalio.client import Client

from client.devserver import DevServer
from temporal_flows.language.loader import load_flow
from temporal_flows.metadata import HEARTBEAT_TIMEOUT
from client.runs import start_run, wait_result
from client.worker import create_worker
from tests.support import REPO, cli_env, pid_alive, task_run, tflow, wait_until, write_flow

FLOW = """
id: durable
namespace: tests.durability
tasks:
  - id: first
    type: commands
    commands:
      - echo "first $(date +%s.%N)" >> {log}
  - id: slow
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands:
      - echo "slow-start $(date +%s.%N)" >> {log}
      - sleep {sleep} & echo $! > {pid_file}; wait $!
      - echo "slow-done $(date +%s.%N)" >> {log}
  - id: last
    type: commands
    commands:
      - echo "last $(date +%s.%N)" >> {log}
"""


def _lines(log: Path, prefix: str) -> list[float]:
    if not log.exists():
        return []
    return [float(line.split()[1]) for line in log.read_text().splitlines() if line.split()[0] == prefix]


def _start_worker(address: str, task_queue: str, output: Path) -> subprocess.Popen[bytes]:
    with open(output, "ab") as sink:
        return subprocess.Popen(
            tflow("worker", "--address", address, "--task-queue", task_queue),
            cwd=REPO, env=cli_env(), stdout=sink, stderr=subprocess.STDOUT,
        )


async def test_worker_killed_mid_task_loses_nothing(client: Client, temporal_address: str, task_queue: str, tmp_path: Path):
    log, pid_file = tmp_path / "events.log", tmp_path / "sleep.pid"
    flow = write_flow(tmp_path, FLOW.format(log=log, pid_file=pid_file, sleep=4))
    handle = await start_run(client, load_flow(flow), task_queue=task_queue)

    first_worker = _start_worker(temporal_address, task_queue, tmp_path / "worker1.log")
    try:
        assert await asyncio.to_thread(wait_until, lambda: pid_file.exists() and pid_file.read_text().strip(), 30)
        orphan = int(pid_file.read_text())
        first_worker.send_signal(signal.SIGKILL)
        killed_at = time.time()
        first_worker.wait(5)
        # The killed worker's task process dies with it (parent-death signal), grandchildren included.
        assert await asyncio.to_thread(wait_until, lambda: not pid_alive(orphan), 3), "the task's sleep outlived its worker"
    finally:
        if first_worker.poll() is None:
            first_worker.kill()

    second_worker = _start_worker(temporal_address, task_queue, tmp_path / "worker2.log")
    try:
        result = await asyncio.wait_for(wait_result(handle), timeout=60)
    finally:
        second_worker.send_signal(signal.SIGTERM)
        second_worker.wait(15)

    assert result["state"] == "SUCCESS", result
    assert len(_lines(log, "first")) == 1, "a completed task ran again"
    starts = _lines(log, "slow-start")
    assert len(starts) == 2, f"the interrupted task should run again exactly once, ran {len(starts)} times"
    assert len(_lines(log, "slow-done")) == 1
    assert len(_lines(log, "last")) == 1
    redispatch = starts[1] - killed_at
    print(f"interrupted task re-dispatched {redispatch:.1f}s after the worker was killed")
    assert redispatch <= HEARTBEAT_TIMEOUT.total_seconds() + 5 <= 15
    # A re-dispatch after a dead worker is not an attempt of the user's retry budget.
    assert task_run(result, "slow")["attempts"] == 1
    assert [run["task_id"] for run in result["task_runs"]] == ["first", "slow", "last"]


async def test_server_restart_on_same_sqlite_file_mid_run(tmp_path: Path, task_queue: str):
    log, pid_file = tmp_path / "events.log", tmp_path / "sleep.pid"
    flow = write_flow(tmp_path, FLOW.format(log=log, pid_file=pid_file, sleep=3))
    server = DevServer(port=0, ui_port=0, db_filename=tmp_path / "restart.db", headless=True, log_file=tmp_path / "server.log")
    await server.astart()
    try:
        client = await Client.connect(server.address)
        handle = await start_run(client, load_flow(flow), task_queue=task_queue)
        async with create_worker(client, task_queue, graceful_shutdown_s=5):
            assert await asyncio.to_thread(wait_until, lambda: pid_file.exists(), 30)
            server.stop()
            await asyncio.sleep(1)
            await server.astart()
            result = await asyncio.wait_for(wait_result(handle), timeout=90)
    finally:
        server.stop()
    assert result["state"] == "SUCCESS", result
    assert len(_lines(log, "first")) == 1
    assert len(_lines(log, "last")) == 1
    assert len(_lines(log, "slow-done")) >= 1


async def test_a_task_whose_worker_is_lost_past_the_redispatch_limit_fails_saying_so(
    client: Client, temporal_address: str, task_queue: str, tmp_path: Path
):
    log, pid_file = tmp_path / "events.log", tmp_path / "sleep.pid"
    flow = write_flow(tmp_path, FLOW.format(log=log, pid_file=pid_file, sleep=30))
    handle = await start_run(client, load_flow(flow), task_queue=task_queue, redispatch_limit=0)
    first_worker = _start_worker(temporal_address, task_queue, tmp_path / "worker1.log")
    try:
        assert await asyncio.to_thread(wait_until, lambda: pid_file.exists() and pid_file.read_text().strip(), 30)
        first_worker.send_signal(signal.SIGKILL)
        first_worker.wait(5)
    finally:
        if first_worker.poll() is None:
            first_worker.kill()
    second_worker = _start_worker(temporal_address, task_queue, tmp_path / "worker2.log")
    try:
        result = await asyncio.wait_for(wait_result(handle), timeout=HEARTBEAT_TIMEOUT.total_seconds() + 20)
    finally:
        second_worker.send_signal(signal.SIGTERM)
        second_worker.wait(15)
    slow = task_run(result, "slow")
    assert result["state"] == "FAILED"
    assert slow["state"] == "FAILED"
    assert slow["error"]["type"] == "WorkerLost"
    assert "worker was lost 1 time" in slow["error"]["message"]
    assert len(_lines(log, "slow-start")) == 1, "with a limit of 0 the task must not be re-dispatched"
    assert "last" not in [run["task_id"] for run in result["task_runs"]]
