"""The Docker task runner's whole path on a worker, against a stand-in `docker` CLI (this machine
has no engine): the stand-in answers `docker version` like a reachable engine, records each
`docker run` command line, and runs the container's command as a local process in the mounted
working directory with the variables passed by name — so the test checks what the worker asks
Docker for, and that the task, its files and its protocol work through it."""

from __future__ import annotations

import os
import json
import sys
from pathlib import Path

import pytest
from temporalio.client import Client

import activities.task_runners as runners
from client.runs import start_run, wait_result
from temporal_flows.language.loader import load_flow
from tests.support import task_run, write_flow

FAKE_DOCKER = r"""#!/bin/sh
# A stand-in for the docker CLI: `version` answers, `run` runs the command locally (see the test).
if [ "$1" = version ]; then echo 27.0.0; exit 0; fi
"$FAKE_CONTAINER_BIN/python" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$FAKE_DOCKER_LOG"
[ "$1" = rm ] && exit 0
[ "$1" = run ] || { echo "unexpected: $*" >&2; exit 2; }
shift
workdir=
while [ $# -gt 0 ]; do
  case "$1" in
    --rm) shift ;;
    --workdir) workdir=$2; shift 2 ;;
    --env) export "$2"; shift 2 ;;
    --name|--pull|--volume|--user|--network|--cpus|--memory|--entrypoint) shift 2 ;;
    *) break ;;
  esac
done
image=$1; shift
cd "$workdir" || exit 125
echo "container of $image" >&2
PATH="$FAKE_CONTAINER_BIN:$PATH" exec "$@"
"""

FLOW = """\
id: in_docker
namespace: tests
tasks:
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    containerImage: ghcr.io/kestra-io/pydata:latest
    taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker, pullPolicy: NEVER, volumes: ["/srv/data:/data:ro"]}
    env: {TOKEN: s3cr3t}
    script: |
      import os
      from kestra import Kestra
      Kestra.outputs({"token": os.environ["TOKEN"], "cwd": os.getcwd()})
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {type: Docker}
    beforeCommands: ["echo before > note.txt"]
    commands: ['echo "::{\\"outputs\\": {\\"note\\": \\"$(cat note.txt)\\"}}::"']
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in first on the worker's PATH; returns the file its command lines go to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker-runs.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_CONTAINER_BIN", os.path.dirname(sys.executable))  # the image's `python`
    monkeypatch.setattr(runners, "_engine_checks", {})
    yield log
    runners._engine_checks.clear()


async def test_docker_tasks_go_through_docker_run(client: Client, worker: str, tmp_path: Path, fake_docker: Path) -> None:
    result = await wait_result(await start_run(client, load_flow(write_flow(tmp_path, FLOW)), task_queue=worker))
    assert result["state"] == "SUCCESS", result["error"]
    py_vars = task_run(result, "py")["outputs"]["vars"]
    assert py_vars["token"] == "s3cr3t"
    assert task_run(result, "shell")["outputs"]["vars"] == {"note": "before"}

    py_run, shell_run = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    workdir = py_vars["cwd"]
    assert py_run[:3] == ["run", "--rm", "--name"] and py_run[3].startswith("tflow-")
    assert py_run[4:] == [
        "--pull", "never", "--volume", f"{workdir}:{workdir}", "--workdir", workdir, "--volume", "/srv/data:/data:ro",
        "--env", "PYTHONUNBUFFERED", "--env", "TOKEN",
        "ghcr.io/kestra-io/pydata:latest", "/bin/sh", "-c", ". ./.tflow-script",  # the script by file, not on the command line
    ]
    assert "s3cr3t" not in " ".join(py_run)
    assert shell_run[shell_run.index("--pull") + 1] == "missing"
    assert shell_run[-4:] == ["ubuntu:latest", "/bin/sh", "-c", ". ./.tflow-script"]
    assert not os.path.exists(workdir), "the working directory is removed after the task"


TIMED_OUT = """\
id: docker_timeout
namespace: tests
tasks:
  - id: slow
    type: commands
    timeout: PT1S
    taskRunner: {type: Docker}
    commands: ["sleep 30"]
"""


async def test_a_timed_out_docker_task_removes_its_container(client: Client, worker: str, tmp_path: Path, fake_docker: Path) -> None:
    result = await wait_result(await start_run(client, load_flow(write_flow(tmp_path, TIMED_OUT)), task_queue=worker))
    slow = task_run(result, "slow")
    assert slow["state"] == "FAILED" and slow["error"]["type"] == "Timeout"
    run, removal = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    name = run[run.index("--name") + 1]
    assert removal == ["rm", "--force", name], "killing the docker CLI leaves the container: it is removed"
