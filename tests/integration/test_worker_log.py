"""A task's output goes to the task's log, not the worker's: a real worker, a task printing 100,000
lines, and the worker's log read back from its (rotating) file."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from client.runs import start_run, wait_result
from client.task_logs import read_task_logs
from client.worker_log import LOG_FORMAT
from temporal_flows.language.loader import load_flow
from tests.support import write_flow

LINES = 100_000
MAX_BYTES = 64 * 1024


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Path]:
    """The worker's log as `tflow worker --log-file` writes it (rotating), for this test: the
    loggers of the worker and its activities, kept from pytest's own capture (which would hold
    every record in memory)."""
    path = tmp_path / "worker.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=2)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    loggers = [logging.getLogger(name) for name in ("temporalio.activity", "tflow.worker")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
        handler.close()


def set_level(level: int) -> None:
    for name in ("temporalio.activity", "tflow.worker"):
        logging.getLogger(name).setLevel(level)


def flow(tmp_path: Path, flow_id: str, lines: int = LINES) -> Path:
    return write_flow(tmp_path, f"""
        id: {flow_id}
        namespace: tests
        tasks:
          - id: chatty
            type: commands
            commands:
              - seq {lines}
              - echo oops >&2
        """, f"{flow_id}.yaml")


async def test_task_output_stays_out_of_the_workers_info_log(client: Client, worker: str, worker_log: Path,
                                                            tmp_path: Path) -> None:
    set_level(logging.INFO)
    handle = await start_run(client, load_flow(flow(tmp_path, "chatty-info")), task_queue=worker)
    result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result
    text = worker_log.read_text()
    assert len(text.encode()) < 4096, text[:5000]
    mine = [line for line in text.splitlines() if handle.id in line]
    assert len(mine) == 1 and " INFO tflow.worker: task chatty tflow.commands: SUCCESS in " in mine[0], text
    [attempt] = await read_task_logs(handle, "chatty")
    messages = [line["message"] for line in attempt.lines]
    assert messages[0] == "1" and messages[-2:] == [str(LINES), "oops"]
    assert attempt.lines[-1]["level"] == "WARN" and "log lines left out" in " ".join(messages)


async def test_task_output_is_in_the_workers_debug_log_which_rotates(client: Client, worker: str, worker_log: Path,
                                                                      tmp_path: Path) -> None:
    """The control of the test above (the lines do reach the worker's logging, at DEBUG), and the
    rotation that bounds the file: 64 KiB and two old files, however much the task printed."""
    set_level(logging.DEBUG)
    lines = 20_000  # ~6 MB of DEBUG records
    result = await wait_result(await start_run(client, load_flow(flow(tmp_path, "chatty-debug", lines)), task_queue=worker))
    assert result["state"] == "SUCCESS", result
    files = sorted(tmp_path.glob("worker.log*"))
    assert [path.name for path in files] == ["worker.log", "worker.log.1", "worker.log.2"]
    assert all(path.stat().st_size <= MAX_BYTES for path in files)
    assert f"DEBUG temporalio.activity: {lines} (" in worker_log.read_text() + (tmp_path / "worker.log.1").read_text()


async def test_each_task_run_is_one_info_line_with_its_state(client: Client, worker: str, worker_log: Path,
                                                            tmp_path: Path) -> None:
    set_level(logging.INFO)
    path = write_flow(tmp_path, """
        id: states
        namespace: tests
        tasks:
          - id: all
            type: parallel
            tasks:
              - id: fine
                type: commands
                commands: ["echo fine"]
              - id: broken
                type: commands
                commands: ["echo broken; exit 3"]
              - id: slow
                type: commands
                timeout: PT1S
                commands: ["sleep 30"]
        """)
    handle = await start_run(client, load_flow(path), task_queue=worker)
    assert (await wait_result(handle))["state"] == "FAILED"
    mine = [line.split(" INFO tflow.worker: ", 1)[1] for line in worker_log.read_text().splitlines()
            if handle.id in line and " INFO tflow.worker: " in line]  # the SDK warns of each failure too
    states = sorted(line.split(" in ")[0] for line in mine)
    assert states == ["task broken tflow.commands: FAILED", "task fine tflow.commands: SUCCESS",
                      "task slow tflow.commands: FAILED (timed out)"], mine
