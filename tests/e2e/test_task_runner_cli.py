"""`tflow` with task runners and task logs, as real processes (issue 8): `tflow worker
--task-runner process` runs Docker tasks as processes, `tflow run --logs` shows each task run's
log as it ends, `tflow status RUN_ID --logs [TASK]` prints them (or puts them in --json), and the
embedded `tflow run --task-runner process` runs seed 000 unchanged (its sleeps shortened as in
tests/integration/test_seed_000.py)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from activities.task_runners import docker_unreachable_reason
from tests.e2e.test_cli import WorkerProcess, explain, json_out, run_cli
from tests.integration.test_seed_000 import PASS_ENV, SLEEP_SCALE, seed_flow
from tests.support import REPO, runs_of, task_run, write_flow

FLOW = """\
id: logged
namespace: tests
tasks:
  - id: hello
    type: io.kestra.plugin.scripts.python.Script
    taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
    containerImage: python:3.12-slim
    script: |
      import sys
      print("hello from python")
      print("a warning", file=sys.stderr)
  - id: shell
    type: commands
    commands: ["echo shell says hi"]
"""


def test_worker_runs_docker_tasks_as_processes_and_logs_are_shown(temporal_address: str, task_queue: str, tmp_path: Path) -> None:
    flow = write_flow(tmp_path, FLOW)
    run_id = f"logged-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(temporal_address, task_queue, tmp_path / "worker.log", "--task-runner", "process")
    try:
        worker.wait_polling()
        ran = run_cli("run", str(flow), "--address", temporal_address, "--task-queue", task_queue, "--id", run_id, "--logs")
    finally:
        assert worker.terminate() == 0, worker.output()
    assert ran.returncode == 0, explain(ran)
    assert "── hello · attempt 1 · SUCCESS · 2 lines" in ran.stdout, explain(ran)
    assert "INFO  hello from python" in ran.stdout and "WARN  a warning" in ran.stdout, explain(ran)
    assert "── shell · attempt 1 · SUCCESS · 1 line" in ran.stdout and "INFO  shell says hi" in ran.stdout, explain(ran)

    one = run_cli("status", run_id, "--logs", "hello", "--address", temporal_address)
    assert one.returncode == 0, explain(one)
    assert "hello from python" in one.stdout and "shell says hi" not in one.stdout, explain(one)
    as_json = run_cli("status", run_id, "--logs", "--json", "--address", temporal_address)
    assert as_json.returncode == 0, explain(as_json)
    result = json_out(as_json)
    assert result["state"] == "SUCCESS"
    logs = {attempt["task_id"]: attempt for attempt in result["logs"]}
    assert [line["message"] for line in logs["shell"]["lines"]] == ["shell says hi"]
    assert logs["hello"]["task_run_id"] == task_run(result, "hello")["id"]
    assert [(line["level"], line["message"]) for line in logs["hello"]["lines"]] == [("INFO", "hello from python"), ("WARN", "a warning")]

    unknown = run_cli("status", run_id, "--logs", "nosuch", "--address", temporal_address)
    assert unknown.returncode == 2 and "no task run of 'nosuch'" in unknown.stderr, explain(unknown)
    cluster = run_cli("run", str(flow), "--address", temporal_address, "--task-runner", "process")
    assert cluster.returncode == 2 and "tflow worker --task-runner process" in cluster.stderr, explain(cluster)
    bad = run_cli("worker", "--task-runner", "podman")
    assert bad.returncode == 2 and "expected one of auto, process" in bad.stderr, explain(bad)


def test_embedded_run_of_seed_000_with_and_without_the_process_runner(tmp_path: Path) -> None:
    flow = tmp_path / "python_partitions.yaml"
    flow.write_text(seed_flow())
    scaled = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests" / "sleep_scale"), os.environ.get("PYTHONPATH")])),
              "TFLOW_TEST_SLEEP_SCALE": SLEEP_SCALE, "TFLOW_PASS_ENV": PASS_ENV, "TFLOW_HOME": str(tmp_path)}
    ran = run_cli("run", str(flow), "--json", "--logs", "--task-runner", "process", timeout=120, **scaled)
    assert ran.returncode == 0, explain(ran)
    result = json_out(ran)
    assert result["state"] == "SUCCESS"
    assert len(task_run(result, "getPartitions")["outputs"]["vars"]["partitions"]) == 9
    partitions = runs_of(result, "partition")
    assert len(partitions) == 9
    logs = [attempt for attempt in result["logs"] if attempt["task_id"] == "partition"]
    assert sorted(attempt["lines"][0]["message"] for attempt in logs) == sorted(
        f"Reading and processing partition {run['value']}" for run in partitions)

    if docker_unreachable_reason() is not None:
        started = time.monotonic()
        refused = run_cli("run", str(flow), "--json", timeout=120, **scaled)
        took = time.monotonic() - started
        assert refused.returncode == 1, explain(refused)
        failed = json_out(refused)
        assert failed["state"] == "FAILED" and "ghcr.io/kestra-io/pydata:latest" in failed["error"]["message"]
        assert "--task-runner process" in failed["error"]["message"]
        assert took < 30, f"took {took:.1f}s (the embedded server's start included)"
    else:  # pragma: no cover - machines with Docker
        pytest.skip("a Docker engine is reachable here: the refusal is not tested")
