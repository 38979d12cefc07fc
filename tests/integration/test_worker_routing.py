"""`workerGroup.key` routes a task to that Temporal task queue (SPEC §3.3); `tflow worker` serves
several queues (`--task-queue` repeated). Two worker processes on distinct queues; the history's
ActivityTaskStarted identity (`<pid>@<host>`) proves which process ran each task."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.support import REPO, cli_env, fill, run_with_history, task_run, tflow, write_flow


def _start_worker(address: str, queues: list[str], output: Path) -> subprocess.Popen[bytes]:
    arguments = [argument for queue in queues for argument in ("--task-queue", queue)]
    with open(output, "ab") as sink:
        return subprocess.Popen(tflow("worker", "--address", address, *arguments, "--drain-timeout", "1"),
                                cwd=REPO, env=cli_env(), stdout=sink, stderr=subprocess.STDOUT)


def _runners(events: list) -> dict[str, tuple[str, str]]:
    """task id → (task queue it was scheduled on, identity of the worker that started it)."""
    scheduled: dict[int, tuple[str, str]] = {}
    started: dict[str, tuple[str, str]] = {}
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            request = json.loads(attributes.input.payloads[0].data)
            if isinstance(request, dict) and "task_id" in request:
                scheduled[event.event_id] = (request["task_id"], attributes.task_queue.name)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attributes = event.activity_task_started_event_attributes
            if attributes.scheduled_event_id in scheduled:
                task_id, queue = scheduled[attributes.scheduled_event_id]
                started[task_id] = (queue, attributes.identity)
    return started


async def test_each_task_runs_on_the_worker_its_worker_group_routes_it_to(client: Client, temporal_address: str, tmp_path: Path):
    suffix = uuid.uuid4().hex[:8]
    main, extra, gpu = f"main-{suffix}", f"extra-{suffix}", f"gpu-{suffix}"
    first = _start_worker(temporal_address, [main, extra], tmp_path / "first.log")
    second = _start_worker(temporal_address, [gpu], tmp_path / "second.log")
    try:
        flow = write_flow(tmp_path, fill("""
            id: routed
            namespace: tests
            tasks:
              - id: on_main
                type: commands
                commands: ["echo here"]
              - id: on_gpu
                type: commands
                workerGroup: {key: <<gpu>>}
                commands: ["echo there"]
              - id: on_extra
                type: commands
                workerGroup: {key: <<extra>>}
                commands: ["echo elsewhere"]
            """, gpu=gpu, extra=extra))
        result, events = await run_with_history(client, flow, main)
        assert result["state"] == "SUCCESS", result
        assert all(task_run(result, task)["state"] == "SUCCESS" for task in ("on_main", "on_gpu", "on_extra"))
        runners = _runners(events)
        assert runners["on_main"][0] == main and runners["on_gpu"][0] == gpu and runners["on_extra"][0] == extra
        assert runners["on_main"][1].startswith(f"{first.pid}@"), runners
        assert runners["on_extra"][1].startswith(f"{first.pid}@"), "a second --task-queue of the same process serves it"
        assert runners["on_gpu"][1].startswith(f"{second.pid}@"), runners
    finally:
        for process in (first, second):
            process.terminate()
        for process in (first, second):
            process.wait(timeout=30)
