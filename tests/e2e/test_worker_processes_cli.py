"""`tflow worker` as a process: `tflow cancel` leaves none of a task's processes (also ones that
left its process group), and `--log-file` holds one line per task run, not the task's output."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.test_cli import WorkerProcess, assert_no_traceback, explain, json_out, run_cli, unique, wait_final
from tests.escapees import ESCAPES, escape_script, marked_sleep, wait_marked, wait_unmarked
from tests.support import task_run, write_flow


def commands_flow(folder: Path, flow_id: str, commands: list[str]) -> Path:
    lines = "\n".join(f"              - {json.dumps(line)}" for line in commands)
    return write_flow(folder, f"""
        id: {flow_id}
        namespace: e2e
        tasks:
          - id: work
            type: commands
            commands:
{lines}
        """, f"{flow_id}.yaml")


def test_cancel_kills_every_process_and_the_worker_log_has_one_line_per_task_run(
        temporal_address: str, task_queue: str, tmp_path: Path) -> None:
    address, log = temporal_address, tmp_path / "worker.log"
    sleep, marker = marked_sleep(tmp_path)
    escaping = commands_flow(tmp_path, unique("escapes"), [*escape_script(sleep).splitlines(), "sleep 1000"])
    chatty = commands_flow(tmp_path, unique("chatty"), ["seq 100000"])
    worker = WorkerProcess(address, task_queue, tmp_path / "worker.out", "--log-file", str(log),
                           "--log-max-bytes", "65536", "--log-backups", "1")
    try:
        worker.wait_polling()
        started = run_cli("run", str(escaping), "--address", address, "--task-queue", task_queue, "--detach", "--json")
        assert started.returncode == 0, explain(started)
        run_id = json_out(started)["run_id"]
        wait_marked(marker, len(ESCAPES), timeout=20)

        cancelled = run_cli("cancel", run_id, "--address", address, "--json")
        ended = time.monotonic()
        assert cancelled.returncode == 0, explain(cancelled)
        assert_no_traceback(cancelled)
        assert task_run(json_out(cancelled), "work")["state"] == "CANCELLED"
        assert wait_unmarked(marker) == [], f"alive {time.monotonic() - ended:.1f}s after `tflow cancel`"

        done = run_cli("run", str(chatty), "--address", address, "--task-queue", task_queue, "--detach", "--json")
        assert done.returncode == 0, explain(done)
        chatty_id = json_out(done)["run_id"]
        assert wait_final(address, chatty_id, timeout=60)["state"] == "SUCCESS"
    finally:
        assert worker.terminate() == 0, worker.output()
    text = log.read_text()
    assert len(text.encode()) < 4096, text[:5000]
    assert not list(tmp_path.glob("worker.log.*")), "a few lines must not have rotated the file"
    lines = {run: [line for line in text.splitlines() if run in line] for run in (run_id, chatty_id)}
    assert len(lines[run_id]) == 1 and " INFO tflow.worker: task work tflow.commands: CANCELLED in " in lines[run_id][0]
    assert len(lines[chatty_id]) == 1 and ": SUCCESS in " in lines[chatty_id][0], text
    console = (tmp_path / "worker.out").read_text()
    assert "Worker polling" in console and "100000" not in console + text


def test_a_bad_log_level_is_a_usage_error() -> None:
    proc = run_cli("worker", "--log-level", "LOUD", "--address", "127.0.0.1:1")
    assert proc.returncode == 2, explain(proc)
    assert "--log-level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'" in proc.stderr
    assert_no_traceback(proc)
