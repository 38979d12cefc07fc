"""Logs while tasks run (issue 16 part 3), as real processes on the session's dev server: `tflow
status RUN --logs --follow` shows a running commands task's line within ~2 s of it being printed
(read from the attempt's heartbeat), the rest when it is printed, each line once; a `log` task's
message is a line of its task run's log at its level (not in the worker's log), and `logLevel`
drops a message below it."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from pathlib import Path

import aiohttp

from tests.e2e.test_webui import webui
from tests.e2e.test_cli import WorkerProcess, explain, json_out, run_cli
from tests.support import REPO, cli_env, task_run, tflow, write_flow

FLOW = """\
id: live_logs
namespace: tests
tasks:
  - id: careful
    type: io.kestra.plugin.core.log.Log
    message: "mind the {{ 'gap' }}"
    level: WARN
  - id: quiet
    type: io.kestra.plugin.core.log.Log
    message: hidden chatter
    logLevel: ERROR
  - id: slow
    type: commands
    commands: ["while [ ! -e {go} ]; do sleep 0.05; done; echo first; sleep 4; echo second"]
"""


class LineReader:
    """Reads a process's stdout in a thread, stamping each line with the wall clock as it arrives."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def arrivals(self, text: str) -> list[float]:
        return [at for at, line in self.lines if line.endswith(f" {text}")]

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for _, line in self.lines):
                return True
            time.sleep(0.05)
        return False

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def test_status_follow_shows_a_running_tasks_lines_and_log_task_lines(temporal_address: str, task_queue: str, tmp_path: Path) -> None:
    go = tmp_path / "go"  # the task prints `first` once it exists: the test's clock starts there
    flow = write_flow(tmp_path, FLOW.replace("{go}", str(go)))
    run_id = f"live-logs-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(temporal_address, task_queue, tmp_path / "worker.log")
    try:
        worker.wait_polling()
        started = run_cli("run", str(flow), "--address", temporal_address, "--task-queue", task_queue, "--id", run_id, "--detach")
        assert started.returncode == 0, explain(started)
        follow = subprocess.Popen(tflow("status", run_id, "--logs", "--follow", "--address", temporal_address),
                                  cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reader = LineReader(follow)
        try:
            # The follower has printed the ledger (its last line names the UI) and now follows.
            assert reader.wait_for("Temporal UI", 30), reader.text()
            task_started = time.time()
            go.touch()
            assert follow.wait(timeout=40) == 0, follow.stderr.read() if follow.stderr else ""
        finally:
            if follow.poll() is None:
                follow.kill()
        reader.join(5)
    finally:
        assert worker.terminate() == 0, worker.output()
    followed = reader.text()

    status = run_cli("status", run_id, "--json", "--address", temporal_address)
    assert status.returncode == 0, explain(status)
    slow = task_run(json_out(status), "slow")
    assert slow["state"] == "SUCCESS"
    first, second = reader.arrivals("first"), reader.arrivals("second")
    assert len(first) == 1 and len(second) == 1, followed
    assert first[0] - task_started < 3.0, (first[0] - task_started, followed)
    assert second[0] - task_started >= 4.0, (second[0] - task_started, followed)
    assert "slow · attempt 1 · running" in followed and "SUCCESS · 2 lines (" in followed, followed

    logs = run_cli("status", run_id, "--logs", "--address", temporal_address)
    assert logs.returncode == 0, explain(logs)
    assert "── careful · attempt 1 · SUCCESS · 1 line" in logs.stdout and "WARN  mind the gap" in logs.stdout, explain(logs)
    assert "hidden chatter" not in logs.stdout and "── quiet · attempt 1 · SUCCESS · no output" in logs.stdout, explain(logs)
    as_json = json_out(run_cli("status", run_id, "--logs", "careful", "--json", "--address", temporal_address))
    assert [(line["level"], line["message"]) for attempt in as_json["logs"] for line in attempt["lines"]] == [("WARN", "mind the gap")]
    assert "mind the gap" in followed, followed
    worker_log = worker.log.read_text()
    assert "Worker polling" in worker_log and "mind the gap" not in worker_log and "hidden chatter" not in worker_log, worker_log


async def test_web_view_logs_show_a_running_tasks_lines(temporal_address: str, worker: str, tmp_path: Path) -> None:
    """The page's log endpoint (read again by the page every second while an attempt runs) has a
    running attempt's lines within ~2 s, then its closed log, and the `log` tasks' lines."""
    go = tmp_path / "go"
    flow = write_flow(tmp_path, FLOW.replace("{go}", str(go)))
    run_id = f"live-web-{uuid.uuid4().hex[:8]}"
    started = run_cli("run", str(flow), "--address", temporal_address, "--task-queue", worker, "--id", run_id, "--detach")
    assert started.returncode == 0, explain(started)
    async with aiohttp.ClientSession() as session:
        with webui(run_id, "--address", temporal_address, "--task-queue", worker) as base:
            async def slow_logs() -> list[dict]:
                async with session.get(f"{base}/api/runs/{run_id}/logs", params={"task": "slow"}) as response:
                    assert response.status == 200
                    return await response.json()

            assert (await slow_logs()) == [] or all(not attempt["lines"] for attempt in await slow_logs())
            clock = time.monotonic()
            go.touch()
            while not any(line["message"] == "first" for attempt in await slow_logs() for line in attempt["lines"]):
                assert time.monotonic() - clock < 3.0, await slow_logs()
                await asyncio.sleep(0.1)
            [running] = await slow_logs()
            assert running["state"] == "RUNNING" and [line["message"] for line in running["lines"]] == ["first"]
            while (attempts := await slow_logs())[0]["state"] == "RUNNING":
                assert time.monotonic() - clock < 20, attempts
                await asyncio.sleep(0.2)
            assert [(attempt["state"], [line["message"] for line in attempt["lines"]]) for attempt in attempts] == [
                ("SUCCESS", ["first", "second"])]
            async with session.get(f"{base}/api/runs/{run_id}/logs") as response:
                every = await response.json()
    assert {attempt["task_id"]: [line["message"] for line in attempt["lines"]] for attempt in every} == {
        "slow": ["first", "second"], "careful": ["mind the gap"], "quiet": []}


def test_run_logs_show_a_running_tasks_lines(temporal_address: str, task_queue: str, tmp_path: Path) -> None:
    """`tflow run --logs` prints a running task's line within ~3 s of it being printed, once."""
    go = tmp_path / "go"
    flow = write_flow(tmp_path, FLOW.replace("{go}", str(go)))
    worker = WorkerProcess(temporal_address, task_queue, tmp_path / "worker.log")
    try:
        worker.wait_polling()
        proc = subprocess.Popen(tflow("run", str(flow), "--logs", "--address", temporal_address, "--task-queue", task_queue),
                                cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reader = LineReader(proc)
        try:
            assert reader.wait_for("started.", 30), reader.text()
            clock = time.time()
            go.touch()
            assert proc.wait(timeout=40) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        assert worker.terminate() == 0, worker.output()
    reader.join(5)
    first, second = reader.arrivals("first"), reader.arrivals("second")
    assert len(first) == 1 and len(second) == 1, reader.text()
    assert first[0] - clock < 3.0 and second[0] - clock >= 4.0, (first[0] - clock, second[0] - clock, reader.text())
    assert "── careful · attempt 1 · SUCCESS · 1 line" in reader.text() and "WARN  mind the gap" in reader.text(), reader.text()
