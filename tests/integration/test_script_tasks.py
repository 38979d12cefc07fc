"""`script` and `commands` tasks end to end on a real server with real processes (issue 8, items
1-3): Kestra's own `kestra` package under the worker's Python, python Commands with beforeCommands
and env, failures carrying stderr's tail, a fresh working directory per attempt, task logs read
back from the history, and Docker tasks on a worker that runs them as processes."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from temporalio.client import Client

from client.runs import start_run, wait_result
from client.task_logs import read_task_logs
from client.worker import create_worker
from temporal_flows.language.loader import load_flow
from tests.support import task_run, write_flow

KESTRA_SCRIPT = """\
id: kestra_script
namespace: tests
tasks:
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    env: {GREETING: hello}
    script: |
      import os, sys
      from kestra import Kestra
      print("python is", sys.executable)
      Kestra.outputs({"greeting": os.environ["GREETING"], "rows": [1, 2, 3]})
      Kestra.counter("rows", 3, {"table": "t"})
      Kestra.timer("took", 0.5)
      Kestra.logger().warning("careful")
      print("to stderr", file=sys.stderr)
  - id: commands
    type: io.kestra.plugin.scripts.python.Commands
    beforeCommands:
      - printf 'import sys\\nprint("main says", sys.argv[1])\\n' > main.py
    commands:
      - python main.py "{{ outputs.py.vars.greeting }}-{{ outputs.py.vars.rows | length }}"
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    interpreter: ["/bin/bash", "-c"]
    env: {WHO: bash}
    beforeCommands: ["declare -a words=(from $WHO)"]
    commands: ['echo "${words[@]}"']
"""


async def test_kestra_script_python_commands_and_shell(client: Client, worker: str, tmp_path: Path) -> None:
    handle = await start_run(client, load_flow(write_flow(tmp_path, KESTRA_SCRIPT)), task_queue=worker)
    result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result["error"]
    py = task_run(result, "py")
    assert py["outputs"]["vars"] == {"greeting": "hello", "rows": [1, 2, 3]}
    assert py["outputs"]["exitCode"] == 0
    assert sorted((metric["name"], metric["type"], metric["value"], tuple(metric["tags"].items())) for metric in py["metrics"]) == [
        ("rows", "counter", 3, (("table", "t"),)), ("took", "timer", 0.5, ())]

    logs = {attempt.task_id: attempt for attempt in await read_task_logs(handle)}
    assert set(logs) == {"py", "commands", "shell"}
    py_lines = [(line["level"], line["message"]) for line in logs["py"].lines]
    assert py_lines[0] == ("INFO", f"python is {sys.executable}")  # the worker's own interpreter
    assert py_lines[1][0] == "WARN" and py_lines[1][1].endswith(" - careful")  # Kestra's logger, on stderr
    assert py_lines[2] == ("WARN", "to stderr")
    assert not any("::" in message for _, message in py_lines), "protocol lines are not logs"
    assert [line["message"] for line in logs["commands"].lines] == ["main says hello-3"]
    assert [line["message"] for line in logs["shell"].lines] == ["from bash"]
    assert all(attempt.state == "SUCCESS" and attempt.attempt == 1 for attempt in logs.values())
    assert (await read_task_logs(handle, "shell"))[0].lines == logs["shell"].lines


FAILING = """\
id: failing_script
namespace: tests
tasks:
  - id: boom
    type: script
    script: |
      print("before the error")
      raise ValueError("the input is empty")
"""


async def test_a_failing_script_fails_with_the_tail_of_stderr(client: Client, worker: str, tmp_path: Path) -> None:
    handle = await start_run(client, load_flow(write_flow(tmp_path, FAILING)), task_queue=worker)
    result = await wait_result(handle)
    assert result["state"] == "FAILED"
    boom = task_run(result, "boom")
    assert boom["error"]["type"] == "CommandFailed"
    message = boom["error"]["message"]
    assert message.startswith("Command failed with exit code 1: ")
    assert message.endswith("ValueError: the input is empty"), message
    [attempt] = await read_task_logs(handle)
    assert attempt.state == "FAILED"
    assert attempt.lines[0]["message"] == "before the error"
    assert attempt.lines[-1] == {**attempt.lines[-1], "level": "WARN", "message": "ValueError: the input is empty"}


def attempts_flow(record: Path) -> str:
    return f"""\
id: fresh_dirs
namespace: tests
tasks:
  - id: retried
    type: commands
    retry: {{type: constant, maxAttempt: 3, interval: PT0.1S}}
    commands:
      - if [ -e marker ]; then echo "working directory reused" >&2; exit 7; fi
      - touch marker
      - pwd >> {record}
      - echo "attempt failed on purpose" >&2
      - exit 3
"""


async def test_each_attempt_gets_a_fresh_working_directory_removed_after(client: Client, worker: str, tmp_path: Path) -> None:
    record = tmp_path / "dirs.txt"
    handle = await start_run(client, load_flow(write_flow(tmp_path, attempts_flow(record))), task_queue=worker)
    result = await wait_result(handle)
    retried = task_run(result, "retried")
    assert retried["state"] == "FAILED" and retried["attempts"] == 3
    assert retried["error"]["message"] == "Command failed with exit code 3: attempt failed on purpose"
    directories = record.read_text().split()
    assert len(directories) == len(set(directories)) == 3
    assert not any(os.path.exists(directory) for directory in directories)
    attempts = await read_task_logs(handle)
    assert [(attempt.attempt, attempt.state) for attempt in attempts] == [(1, "FAILED"), (2, "FAILED"), (3, "FAILED")]


DOCKER_TASKS = """\
id: docker_tasks
namespace: tests
tasks:
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: ubuntu:22.04
    taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker, pullPolicy: ALWAYS}
    commands: ['echo "::{\\"outputs\\": {\\"where\\": \\"$(pwd)\\"}}::"']
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    containerImage: python:3.12-slim
    taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
    python: "{{ python }}"
    script: |
      import sys
      print(sys.executable)
"""


async def test_docker_tasks_run_as_processes_on_a_process_worker(client: Client, task_queue: str, tmp_path: Path) -> None:
    system_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable
    flow = write_flow(tmp_path, DOCKER_TASKS.replace("{{ python }}", system_python))
    async with create_worker(client, task_queue, graceful_shutdown_s=5, task_runner="process"):
        handle = await start_run(client, load_flow(flow), task_queue=task_queue)
        result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result["error"]
    assert task_run(result, "shell")["outputs"]["vars"]["where"].startswith("/tmp")
    logs = {attempt.task_id: attempt for attempt in await read_task_logs(handle)}
    assert [line["message"] for line in logs["py"].lines] == [system_python]  # `python` overrides the worker's


@pytest.mark.parametrize("runner", ["{type: Docker}", "{type: io.kestra.plugin.scripts.runner.docker.Docker}"])
async def test_a_docker_commands_task_without_engine_fails_once(client: Client, worker: str, tmp_path: Path, runner: str) -> None:
    from activities.task_runners import docker_unreachable_reason

    if docker_unreachable_reason() is None:
        pytest.skip("a Docker engine is reachable here")
    flow = write_flow(tmp_path, f"""\
        id: no_engine
        namespace: tests
        tasks:
          - id: shell
            type: commands
            taskRunner: {runner}
            retry: {{type: constant, maxAttempt: 3, interval: PT0.1S}}
            commands: ["echo never"]
        """)
    result = await wait_result(await start_run(client, load_flow(flow), task_queue=worker))
    shell = task_run(result, "shell")
    assert shell["state"] == "FAILED" and shell["attempts"] == 1, "no retry can mend a missing engine"
    assert shell["error"]["type"] == "DockerUnavailable"
    assert "Docker image ubuntu:latest" in shell["error"]["message"]
