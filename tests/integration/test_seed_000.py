"""Acceptance of issue 8: seed 000's flow (Kestra's python Script tasks in Docker, an EachParallel
of nine partitions) runs unchanged.

The flow is read from ../shared/seeds/000_*.txt (its ```yaml block), never copied. With a worker
whose task runner is `process`, the Docker tasks run as local Python processes under the worker's
interpreter, where the published `kestra` package speaks the `::{json}::` protocol. The seed sleeps
1-20 s per partition: the test puts tests/sleep_scale on PYTHONPATH with TFLOW_TEST_SLEEP_SCALE=0.2,
so each sleep lasts max(s/5, 1) seconds (1-4 s) — the flow itself is unchanged.
Without `--task-runner process` and no Docker engine, the run fails at once, saying how to run it.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.task_runners import docker_unreachable_reason
from client.runs import start_run, wait_result
from client.task_logs import read_task_logs
from client.worker import create_worker
from temporal_flows.language.loader import load_flow
from tests.support import REPO, runs_of, task_run

SEEDS = REPO.parent / "shared" / "seeds"
FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
SLEEP_SCALE = "0.2"
PASS_ENV = "PYTHONPATH,TFLOW_TEST_SLEEP_SCALE"
"""What the worker hands its tasks of its environment here (`tflow worker --pass-env`)."""


def seed_flow() -> str:
    seeds = sorted(SEEDS.glob("000_*.txt"))
    if not seeds:
        pytest.skip("seed 000 is not beside the project (../shared/seeds)")
    blocks = FENCE.findall(seeds[0].read_text())
    assert len(blocks) == 1, "seed 000 has one flow"
    return blocks[0]


@pytest.fixture
def seed_path(tmp_path: Path) -> Path:
    path = tmp_path / "python_partitions.yaml"
    path.write_text(seed_flow())
    return path


@pytest.fixture
def short_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripts' Python sleeps 1-4 s instead of 1-20 s (see the module docstring)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO / "tests" / "sleep_scale"), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TFLOW_TEST_SLEEP_SCALE", SLEEP_SCALE)
    monkeypatch.setenv("TFLOW_PASS_ENV", PASS_ENV)  # tasks get only allow-listed variables of the worker's


def moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_seed_000_runs_as_processes_on_a_process_worker(client: Client, task_queue: str, seed_path: Path,
                                                             short_sleeps: None) -> None:
    started = time.monotonic()
    async with create_worker(client, task_queue, graceful_shutdown_s=5, task_runner="process"):
        handle = await start_run(client, load_flow(seed_path), task_queue=task_queue)
        result = await wait_result(handle)
        logs = await read_task_logs(handle)
    took = time.monotonic() - started
    assert result["state"] == "SUCCESS", result.get("error")
    partitions = [f"file_{nr}.parquet" for nr in range(1, 10)]
    assert task_run(result, "getPartitions")["outputs"]["vars"] == {"partitions": partitions}

    runs = runs_of(result, "partition")
    assert sorted(run["value"] for run in runs) == partitions
    for run in runs:
        assert run["state"] == "SUCCESS"
        metrics = {metric["name"]: metric for metric in run["metrics"]}
        assert set(metrics) == {"nr_rows", "processing_time"}
        assert metrics["nr_rows"]["type"] == "counter" and 1 <= metrics["nr_rows"]["value"] <= 1000
        assert metrics["processing_time"]["type"] == "timer" and 1 <= metrics["processing_time"]["value"] <= 20
        for metric in metrics.values():
            assert metric["tags"] == {"partition": run["value"]}

    # The nine ran at once: each printed its first line before any of them ended.
    values = {run["id"]: run["value"] for run in runs}
    first_lines = {}
    for attempt in logs:
        if attempt.task_id == "partition":
            value = values[attempt.task_run_id]
            assert attempt.label == f"partition [{value}]"
            assert attempt.lines[0]["message"] == f"Reading and processing partition {value}"
            first_lines[value] = moment(attempt.lines[0]["timestamp"])
    assert sorted(first_lines) == sorted(partitions)
    first_end = min(moment(run["ended_at"]) for run in runs)
    assert max(first_lines.values()) < first_end, "the nine partitions should overlap in time"
    # Sleeps of 1-4 s in parallel, plus the first task: well under the 20 s of one unscaled sleep.
    assert took < 15, f"took {took:.1f}s"


@pytest.mark.skipif(docker_unreachable_reason() is None, reason="a Docker engine is reachable here")
async def test_seed_000_fails_at_once_without_a_docker_engine(client: Client, worker: str, seed_path: Path) -> None:
    started = time.monotonic()
    result = await wait_result(await start_run(client, load_flow(seed_path), task_queue=worker))
    took = time.monotonic() - started
    assert result["state"] == "FAILED"
    failed = task_run(result, "getPartitions")
    assert failed["state"] == "FAILED" and failed["attempts"] == 1
    assert failed["error"]["type"] == "DockerUnavailable"
    message = failed["error"]["message"]
    assert "ghcr.io/kestra-io/pydata:latest" in message
    assert "tflow worker --task-runner process" in message and "tflow run --task-runner process" in message
    assert result["error"]["message"] == message
    assert not runs_of(result, "partition")
    assert took < 5, f"took {took:.1f}s"
