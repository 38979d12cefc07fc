"""End-to-end tests of the `tflow` CLI: real subprocesses against a real Temporal dev server.

SPEC §6 (the JSON result, exit codes 0/1/2/3) and §8 (the commands). Every `tflow` here is a
separate process (`python -m cli.app`), every worker in address mode is a `tflow worker` process;
nothing about Temporal is mocked. Run with `-s` to see the measured durations.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.client import Client

from client.devserver import free_port, port_is_free
from tests.support import REPO, cli_env, duration, pid_alive, task_run, tflow, wait_until, write_flow

FINAL_STATES = ("SUCCESS", "WARNING", "FAILED", "CANCELLED")
RESULT_KEYS = {"run_id", "flow", "state", "started_at", "ended_at", "duration_s", "outputs", "error", "ui_url", "task_runs"}
TASK_RUN_KEYS = {
    "id", "task_id", "parent_id", "value", "iteration", "state", "attempts",
    "started_at", "ended_at", "outputs", "metrics", "error",
}


# -- helpers -------------------------------------------------------------------------------------

def run_cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """One `tflow` invocation as a real process, with no TEMPORAL_* variables inherited."""
    return subprocess.run(
        tflow(*args), cwd=REPO, env=cli_env(**env), capture_output=True, text=True, timeout=timeout
    )


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout and "Traceback" not in proc.stderr, explain(proc)
    assert "internal error" not in proc.stderr, explain(proc)


def json_out(proc: subprocess.CompletedProcess[str]) -> Any:
    """stdout must be exactly one JSON document (notes go to stderr in --json mode)."""
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as error:  # pragma: no cover - the message is the point
        raise AssertionError(f"stdout is not one JSON document ({error})\n{explain(proc)}") from None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class WorkerProcess:
    """A `tflow worker` subprocess whose output goes to a file (a pipe could fill up and block it)."""

    def __init__(self, address: str, task_queue: str, log: Path, *extra: str):
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(
            tflow("worker", "--address", address, "--task-queue", task_queue, *extra),
            cwd=REPO, env=cli_env(PYTHONUNBUFFERED="1"), stdout=self._out, stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text()

    def wait_polling(self, timeout: float = 20) -> None:
        assert wait_until(lambda: "Worker polling" in self.output() or self.proc.poll() is not None, timeout), self.output()
        assert self.proc.poll() is None, f"the worker exited early ({self.proc.returncode}):\n{self.output()}"

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM (graceful drain), then the exit code; SIGKILL only if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the worker did not stop within {timeout}s of SIGTERM:\n{self.output()}")
        finally:
            self._out.close()


@contextmanager
def worker_process(address: str, task_queue: str, log: Path) -> Iterator[WorkerProcess]:
    """A worker for the block; it must drain and exit 0 on SIGTERM at the end."""
    worker = WorkerProcess(address, task_queue, log)
    try:
        worker.wait_polling()
        yield worker
    finally:
        code = worker.terminate()
    assert code == 0, f"the worker exited {code} after SIGTERM:\n{worker.log.read_text()}"


def status_json(address: str, run_id: str) -> dict[str, Any]:
    proc = run_cli("status", run_id, "--address", address, "--json")
    assert proc.returncode == 0, explain(proc)
    return json_out(proc)


def wait_final(address: str, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        result = status_json(address, run_id)
        if result["state"] in FINAL_STATES or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


async def started_workflows(client: Client, flow_id: str) -> list[Any]:
    await asyncio.sleep(1.5)  # visibility lags a little behind starts
    return [w async for w in client.list_workflows(f"TflowFlowId = '{flow_id}'")]


# -- 1. embedded mode ----------------------------------------------------------------------------

def test_run_embedded_json_result(tmp_path: Path):
    reused_server = not port_is_free(7233)
    proc = run_cli("run", "examples/parallel.yaml", "--json", timeout=120, TFLOW_HOME=str(tmp_path))
    assert proc.returncode == 0, explain(proc)
    assert_no_traceback(proc)
    result = json_out(proc)
    assert isinstance(result, dict)
    assert RESULT_KEYS <= set(result), sorted(RESULT_KEYS - set(result))
    assert result["flow"] == {"namespace": "company.team", "id": "parallel"}
    assert result["state"] == "SUCCESS"
    assert result["error"] is None
    assert isinstance(result["duration_s"], (int, float)) and result["duration_s"] > 0
    assert result["run_id"].startswith("parallel-")
    assert result["ui_url"].startswith("http://127.0.0.1:"), result["ui_url"]
    assert result["run_id"] in result["ui_url"]
    assert len(result["task_runs"]) == 8, [run["task_id"] for run in result["task_runs"]]
    for run in result["task_runs"]:
        assert TASK_RUN_KEYS <= set(run), (run["task_id"], sorted(TASK_RUN_KEYS - set(run)))
        assert run["state"] == "SUCCESS" and run["attempts"] == 1, run
    assert [run["task_id"] for run in result["task_runs"]] == ["parent", "t1", "t2", "t3", "t4", "t5", "t6", "last"]
    parent = task_run(result, "parent")
    took = duration(parent)
    print(f"\n[e2e] embedded parallel.yaml: parent took {took:.3f}s (run {result['duration_s']}s)")
    assert 1.9 <= took <= 3.5, took  # 6 × sleep 1, 3 at a time: two waves
    if not reused_server:
        assert (tmp_path / "temporal.db").is_file(), list(tmp_path.iterdir())


def test_run_embedded_takes_the_ui_url_given(tmp_path: Path):
    """In embedded mode too, --ui-url names the run's Web UI (as on a cluster and in `tflow webui`:
    client.embedded.command_temporal), and with --json the server note goes to stderr."""
    flow = write_flow(tmp_path, """
        id: ui-link
        namespace: e2e.cli
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: hi
    """)
    proc = run_cli("run", str(flow), "--json", "--ui-url", "http://ui.example:8080/", timeout=120, TFLOW_HOME=str(tmp_path))
    assert proc.returncode == 0, explain(proc)
    assert_no_traceback(proc)
    result = json_out(proc)
    assert result["state"] == "SUCCESS", result
    assert result["ui_url"].startswith(f"http://ui.example:8080/namespaces/default/workflows/{result['run_id']}/"), result["ui_url"]
    assert re.search(r"^(Starting an embedded Temporal dev server|Using the Temporal server already running)", proc.stderr, re.M), explain(proc)


# -- 2. address mode: run, status, list ----------------------------------------------------------

def test_run_status_list_with_worker_process(temporal_address: str, task_queue: str, tmp_path: Path):
    address = temporal_address
    with worker_process(address, task_queue, tmp_path / "worker.log"):
        proc = run_cli("run", "examples/sequential.yaml", "--address", address, "--task-queue", task_queue, "--json")
        assert proc.returncode == 0, explain(proc)
        assert_no_traceback(proc)
        result = json_out(proc)
        assert result["state"] == "SUCCESS", result
        assert len(result["task_runs"]) == 10, [run["task_id"] for run in result["task_runs"]]
        took = duration(task_run(result, "parent"))
        print(f"\n[e2e] address-mode sequential.yaml: parent took {took:.3f}s (run {result['duration_s']}s)")
        assert 2.9 <= took <= 4.5, took
        run_id = result["run_id"]

        status = status_json(address, run_id)
        assert status["run_id"] == run_id
        assert status["state"] == result["state"]
        assert [run["id"] for run in status["task_runs"]] == [run["id"] for run in result["task_runs"]]

        human = run_cli("status", run_id, "--address", address)
        assert human.returncode == 0, explain(human)
        for task_id in ("parent", "seq1", "seq2", "t1", "t6", "last"):
            assert re.search(rf"\b{task_id}\b", human.stdout), (task_id, human.stdout)
        assert "SUCCESS" in human.stdout

        listed = run_cli("list", "--address", address, "--json")
        assert listed.returncode == 0, explain(listed)
        assert run_id in [row["run_id"] for row in json_out(listed)]

        def listed_by_flow() -> bool:
            proc = run_cli("list", "--address", address, "--flow", "sequential", "--json")
            assert proc.returncode == 0, explain(proc)
            return run_id in [row["run_id"] for row in json_out(proc)]

        assert wait_until(listed_by_flow, timeout=5, interval=0.3), "run not listed by --flow sequential"


# -- 3. human output -----------------------------------------------------------------------------

def test_run_human_output(temporal_address: str, task_queue: str, tmp_path: Path):
    flow = write_flow(tmp_path, f"""
        id: {unique("human")}
        namespace: e2e
        tasks:
          - id: t1
            type: commands
            commands:
              - sleep 0.3
          - id: t2
            type: return
            format: "done"
    """)
    with worker_process(temporal_address, task_queue, tmp_path / "worker.log"):
        proc = run_cli("run", str(flow), "--address", temporal_address, "--task-queue", task_queue, TEMPORAL_UI_URL="http://ui.example:8080")
    assert proc.returncode == 0, explain(proc)
    assert_no_traceback(proc)
    lines = proc.stdout.splitlines()
    assert any("RUNNING" in line and re.search(r"\bt1\b", line) for line in lines), proc.stdout  # a progress line
    assert any("SUCCESS" in line and re.search(r"\bt2\b", line) for line in lines), proc.stdout
    final = [line for line in lines if line.startswith("Run ") and line.rstrip().split(":")[-1].strip().startswith("SUCCESS")]
    assert final, proc.stdout
    run_id = final[0].split()[1]
    ui = [line for line in lines if line.startswith("Temporal UI:")]
    assert ui and ui[-1].startswith(f"Temporal UI: http://ui.example:8080/namespaces/default/workflows/{run_id}/"), proc.stdout


# -- 4. bad input: exit 2, file:line, no workflow started ----------------------------------------

async def _assert_rejected(client: Client, address: str, flow: Path, flow_id: str, line: int, words: str) -> None:
    proc = run_cli("run", str(flow), "--address", address, "--json")
    assert proc.returncode == 2, explain(proc)
    assert_no_traceback(proc)
    assert f"{flow}:{line}:" in proc.stderr, explain(proc)
    assert words in proc.stderr, explain(proc)
    assert await started_workflows(client, flow_id) == []


async def test_bad_yaml_syntax_is_rejected(client: Client, temporal_address: str, tmp_path: Path):
    flow_id = unique("badyaml")
    flow = write_flow(tmp_path, f"""
        id: {flow_id}
        namespace: e2e
        tasks:
          - id: a
            type: log
            message: [unclosed
          - id: b
    """)
    await _assert_rejected(client, temporal_address, flow, flow_id, 7, "invalid YAML")


async def test_unknown_task_type_is_rejected(client: Client, temporal_address: str, tmp_path: Path):
    flow_id = unique("badtype")
    flow = write_flow(tmp_path, f"""
        id: {flow_id}
        namespace: e2e
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Lgo
            message: hi
    """)
    await _assert_rejected(client, temporal_address, flow, flow_id, 5, "unknown task type")


async def test_unknown_task_reference_is_rejected(client: Client, temporal_address: str, tmp_path: Path):
    flow_id = unique("badref")
    flow = write_flow(tmp_path, f"""
        id: {flow_id}
        namespace: e2e
        tasks:
          - id: a
            type: log
            message: hi
          - id: b
            type: log
            message: "{{{{ outputs.nope.value }}}}"
    """)
    await _assert_rejected(client, temporal_address, flow, flow_id, 9, "nope")


# -- 5. validate ---------------------------------------------------------------------------------

def test_validate_reports_every_problem(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text((REPO / "examples" / "parallel.yaml").read_text())
    bad = write_flow(tmp_path, """
        id: bad
        namespace: e2e
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Lgo
            message: hi
          - id: b
            type: log
            mesage: hi
    """, name="bad.yaml")
    proc = run_cli("validate", str(good), str(bad))
    assert proc.returncode == 2, explain(proc)
    assert_no_traceback(proc)
    assert f"{good}: valid" in proc.stdout, explain(proc)
    output = proc.stdout + proc.stderr
    assert re.search(rf"^{re.escape(str(bad))}:5:\d+: unknown task type `io.kestra.plugin.core.log.Lgo`", output, re.M), output
    assert re.search(rf"^{re.escape(str(bad))}:7:\d+: task `b` \(log\) is missing `message`", output, re.M), output
    assert re.search(rf"^{re.escape(str(bad))}:9:\d+: unknown property `mesage`", output, re.M), output
    assert f"{bad}: valid" not in output

    as_json = run_cli("validate", str(good), str(bad), "--json")
    assert as_json.returncode == 2, explain(as_json)
    reports = json_out(as_json)
    assert [(report["file"], report["valid"]) for report in reports] == [(str(good), True), (str(bad), False)]
    assert reports[0]["problems"] == []
    problems = reports[1]["problems"]
    assert [(problem["line"], problem["column"]) for problem in problems] == [(5, 11), (7, 5), (9, 5)], problems
    assert all(problem["file"] == str(bad) and problem["message"] for problem in problems)

    only_good = run_cli("validate", str(good))
    assert only_good.returncode == 0, explain(only_good)


def test_validate_reports_problems_of_every_kind_at_once(tmp_path: Path):
    """SPEC §9: all errors at once — a bad task type must not hide a duplicate id or a bad reference."""
    bad = write_flow(tmp_path, """
        id: bad
        namespace: e2e
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Lgo
            message: hi
          - id: b
            type: log
            message: "{{ outputs.nope.value }}"
          - id: b
            type: log
            message: again
    """, name="bad.yaml")
    proc = run_cli("validate", str(bad), "--json")
    assert proc.returncode == 2, explain(proc)
    messages = {problem["line"]: problem["message"] for problem in json_out(proc)[0]["problems"]}
    assert "unknown task type" in messages.get(5, ""), messages
    assert "unknown task `nope`" in messages.get(9, ""), messages
    assert "duplicate task id `b`" in messages.get(10, ""), messages


# -- 6. Temporal unreachable ---------------------------------------------------------------------

@pytest.mark.parametrize("command", [("run", "examples/parallel.yaml"), ("status", "x")], ids=["run", "status"])
def test_unreachable_address_exits_3(command: tuple[str, str]):
    address = f"127.0.0.1:{free_port()}"
    proc = run_cli(*command, "--address", address, timeout=30)
    assert proc.returncode == 3, explain(proc)
    assert_no_traceback(proc)
    assert address in proc.stderr, explain(proc)


# -- 7. a failing flow ---------------------------------------------------------------------------

def test_failing_flow_json(temporal_address: str, task_queue: str, tmp_path: Path):
    flow = write_flow(tmp_path, f"""
        id: {unique("failing")}
        namespace: e2e
        tasks:
          - id: boom
            type: commands
            commands:
              - echo disk is full >&2
              - exit 3
          - id: after
            type: commands
            commands:
              - touch {tmp_path}/after-ran
    """)
    with worker_process(temporal_address, task_queue, tmp_path / "worker.log"):
        proc = run_cli("run", str(flow), "--json", "--address", temporal_address, "--task-queue", task_queue)
    assert proc.returncode == 1, explain(proc)
    assert_no_traceback(proc)
    result = json_out(proc)
    assert result["state"] == "FAILED", result
    assert result["error"]["task_id"] == "boom", result["error"]
    assert "disk is full" in result["error"]["message"], result["error"]
    assert task_run(result, "boom")["state"] == "FAILED"
    assert "disk is full" in (task_run(result, "boom")["error"] or {}).get("message", "")
    assert [run["task_id"] for run in result["task_runs"]] == ["boom"]  # nothing new starts after a failure
    assert not (tmp_path / "after-ran").exists()


# -- 8. cancel -----------------------------------------------------------------------------------

def test_detach_then_cancel_kills_the_process(temporal_address: str, task_queue: str, tmp_path: Path):
    address = temporal_address
    pidfile = tmp_path / "sleep.pid"
    flow = write_flow(tmp_path, f"""
        id: {unique("cancel")}
        namespace: e2e
        tasks:
          - id: long
            type: commands
            commands:
              - 'sleep 60 & echo $! > {pidfile}; wait'
          - id: after
            type: log
            message: never
    """)
    with worker_process(address, task_queue, tmp_path / "worker.log"):
        started = run_cli("run", str(flow), "--address", address, "--task-queue", task_queue, "--detach", "--json")
        assert started.returncode == 0, explain(started)
        assert_no_traceback(started)
        run_id = json_out(started)["run_id"]
        assert run_id

        assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), timeout=15), "the task never started"
        sleep_pid = int(pidfile.read_text())
        assert pid_alive(sleep_pid)

        cancelled = run_cli("cancel", run_id, "--address", address, "--json")
        assert cancelled.returncode == 0, explain(cancelled)
        assert_no_traceback(cancelled)
        result = json_out(cancelled)
        assert result["state"] == "CANCELLED", result
        assert task_run(result, "long")["state"] == "CANCELLED", result["task_runs"]
        assert "after" not in [run["task_id"] for run in result["task_runs"]]
        gone = wait_until(lambda: not pid_alive(sleep_pid), timeout=6)
        if not gone:
            os.kill(sleep_pid, signal.SIGKILL)
        assert gone, f"sleep (pid {sleep_pid}) still runs after the run was cancelled"

        again = run_cli("cancel", run_id, "--address", address, "--json")
        assert again.returncode != 0, explain(again)
        assert_no_traceback(again)
        assert run_id in again.stderr and "ended" in again.stderr, explain(again)


# -- 9. graceful drain ---------------------------------------------------------------------------

def test_worker_sigterm_drains_running_task(temporal_address: str, task_queue: str, tmp_path: Path):
    address = temporal_address
    started_file, marker = tmp_path / "started", tmp_path / "marker"
    flow = write_flow(tmp_path, f"""
        id: {unique("drain")}
        namespace: e2e
        tasks:
          - id: slow
            type: commands
            commands:
              - echo started >> {started_file}
              - sleep 2
              - echo done >> {marker}
    """)
    first = WorkerProcess(address, task_queue, tmp_path / "worker1.log")
    try:
        first.wait_polling()
        started = run_cli("run", str(flow), "--address", address, "--task-queue", task_queue, "--detach", "--json")
        assert started.returncode == 0, explain(started)
        run_id = json_out(started)["run_id"]
        assert wait_until(started_file.exists, timeout=15), "the task never started"
        assert not marker.exists()
        first.proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = first.proc.wait(timeout=10)
        took = time.monotonic() - began
        done_at_exit = marker.read_text() if marker.exists() else ""
    finally:
        first_code = first.terminate()
    assert first_code == 0 and code == 0, f"worker exited {code}:\n{first.log.read_text()}"
    print(f"\n[e2e] worker drained in {took:.2f}s after SIGTERM")
    assert done_at_exit == "done\n", f"the worker exited before its task finished (marker: {done_at_exit!r})\n{first.log.read_text()}"

    with worker_process(address, task_queue, tmp_path / "worker2.log"):
        result = wait_final(address, run_id, timeout=30)
    assert result["state"] == "SUCCESS", result
    slow = task_run(result, "slow")
    assert slow["state"] == "SUCCESS" and slow["attempts"] == 1, slow
    assert started_file.read_text() == "started\n"
    assert marker.read_text() == "done\n"  # exactly once


# -- 10. --detach needs an address ---------------------------------------------------------------

def test_detach_without_address_is_a_usage_error():
    proc = run_cli("run", "examples/parallel.yaml", "--detach", timeout=30)
    assert proc.returncode == 2, explain(proc)
    assert_no_traceback(proc)
    assert "--detach" in proc.stderr and "--address" in proc.stderr, explain(proc)
    assert proc.stdout.strip() == "", explain(proc)


def test_json_stays_one_object_past_the_payload_warning_and_status_needs_no_worker(temporal_address: str, task_queue: str, tmp_path: Path):
    # ~600 KB of flow input: over the SDK's 512 KiB payload warning, which must not reach stdout.
    command = "true " + "x" * 7_000
    tasks = "".join(f"\n  - {{id: t{index}, type: commands, commands: [\"{command}\"]}}" for index in range(85))
    flow = tmp_path / "wide.yaml"
    flow.write_text(f"id: wide\nnamespace: tests.e2e\ntasks:\n  - id: group\n    type: parallel\n    concurrent: 20\n    tasks:{tasks.replace(chr(10), chr(10) + '    ')}\n")
    with worker_process(temporal_address, task_queue, tmp_path / "worker.log"):
        proc = run_cli("run", str(flow), "--address", temporal_address, "--task-queue", task_queue, "--json", timeout=120)
    assert proc.returncode == 0, explain(proc)
    assert_no_traceback(proc)
    result = json_out(proc)
    assert result["state"] == "SUCCESS" and len(result["task_runs"]) == 86
    assert "payload" in proc.stderr.lower(), "the SDK's size warning is expected on stderr"
    # No worker polls the queue now: a finished run is read from its history, not replayed.
    started = time.monotonic()
    status = status_json(temporal_address, result["run_id"])
    assert time.monotonic() - started < 10
    assert [run["id"] for run in status["task_runs"]] == [run["id"] for run in result["task_runs"]]
