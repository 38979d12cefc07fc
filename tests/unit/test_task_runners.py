"""Task runners without an engine: the `docker run` command line a Docker task becomes, the worker's
decision per task run, the flow's `taskRunner` as the dialect keeps it, and the bounded task log."""

from __future__ import annotations

import os
import textwrap

import pytest
from temporalio.exceptions import ApplicationError

import activities.task_runners as runners
from activities.api import TaskRunner
from activities.task_log import TaskLog
from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError
from temporal_flows.tasks.runnable.task_runners import declared_runner

DOCKER = TaskRunner(type="docker", image="ghcr.io/kestra-io/pydata:latest")


def test_docker_command_mounts_the_working_directory_and_passes_env_by_name() -> None:
    runner = TaskRunner(type="docker", image="python:3.12-slim", pull_policy="ALWAYS", volumes=["/data:/data:ro"],
                        user="1000:1000", network_mode="host", entry_point=[""], cpus="1.5", memory="512Mb")
    argv = runners.docker_command(runner, ["/bin/sh", "-c", "echo hi"], "/tmp/tflow-x", ["SECRET", "B"], "tflow-tr-1")
    assert argv == [
        "docker", "run", "--rm", "--name", "tflow-tr-1", "--pull", "always",
        "--volume", "/tmp/tflow-x:/tmp/tflow-x", "--workdir", "/tmp/tflow-x", "--volume", "/data:/data:ro",
        "--env", "SECRET", "--env", "B", "--user", "1000:1000", "--network", "host",
        "--cpus", "1.5", "--memory", "512Mb", "--entrypoint", "", "python:3.12-slim", "/bin/sh", "-c", "echo hi",
    ]


@pytest.mark.parametrize(("policy", "flag"), [("IF_NOT_PRESENT", "missing"), ("ALWAYS", "always"), ("NEVER", "never")])
def test_pull_policies_map_to_docker_run_pull(policy: str, flag: str) -> None:
    argv = runners.docker_command(TaskRunner(type="docker", image="alpine", pull_policy=policy), ["true"], "/w", [], "n")
    assert argv[argv.index("--pull") + 1] == flag
    assert argv[-2:] == ["alpine", "true"]


def test_launch_command_keeps_values_off_the_command_line() -> None:
    argv, env = runners.launch_command(DOCKER, "tr-1", ["/bin/sh", "-c", "echo $TOKEN"], "/w", {"TOKEN": "s3cr3t", "N": 2},
                                       {"PATH": "/usr/bin"})
    assert "s3cr3t" not in " ".join(argv)
    assert ["--env", "N", "--env", "TOKEN"] == argv[argv.index("--env"):argv.index("--env") + 4]
    assert env == {**os.environ, "TOKEN": "s3cr3t", "N": "2"}  # the docker CLI is the worker's tool; the container gets names only
    assert argv[argv.index("--name") + 1].startswith("tflow-tr-1-")
    process_argv, process_env = runners.launch_command(TaskRunner(), "tr-1", ["/bin/sh", "-c", "x"], "/w", {}, None)
    assert (process_argv, process_env) == (["/bin/sh", "-c", "x"], None)


def test_the_worker_setting_decides_per_task_run() -> None:
    assert runners.effective_runner(DOCKER, "auto") == DOCKER
    assert runners.effective_runner(DOCKER, "process") == TaskRunner()
    assert runners.effective_runner(TaskRunner(), "process") == TaskRunner()
    with pytest.raises(ValueError):
        runners.effective_runner(DOCKER, "podman")


async def test_no_engine_fails_at_once_naming_the_image_and_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no docker CLI
    monkeypatch.setattr(runners, "_engine_checks", {})
    with pytest.raises(ApplicationError) as caught:
        await runners.check_runner("getPartitions", DOCKER)
    error = caught.value
    assert error.type == "DockerUnavailable" and error.non_retryable
    assert "`getPartitions`" in error.message and "ghcr.io/kestra-io/pydata:latest" in error.message
    assert "docker CLI is not on this worker's PATH" in error.message
    assert "tflow worker --task-runner process" in error.message
    await runners.check_runner("plain", TaskRunner())  # a process needs no engine


def test_a_docker_cli_without_engine_is_reported_with_its_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(runners, "_engine_checks", {})
    reason = runners.docker_unreachable_reason()
    assert reason == "no Docker engine is reachable (Cannot connect to the Docker daemon at unix:///var/run/docker.sock.)"


FLOW = """\
id: runners
namespace: tests
tasks:
  - id: t
    type: {type}
{body}
"""


def load(task_type: str, body: str):
    return load_flow_text(FLOW.format(type=task_type, body=textwrap.indent(textwrap.dedent(body), "    ")), "runners.yaml").flow


def test_the_dialect_keeps_the_declared_runner_and_the_image_defaults() -> None:
    flow = load("io.kestra.plugin.scripts.python.Script", """\
        script: print(1)
        containerImage: python:3.12-slim
        taskRunner:
          type: io.kestra.plugin.scripts.runner.docker.Docker
          pullPolicy: NEVER
          cpu: {cpus: 2}
        """)
    props = flow.tasks[0].properties
    assert props["task_runner"] == {"type": "docker", "pull_policy": "NEVER", "cpu": {"cpus": 2}}
    runner = declared_runner(props, "default:image")
    assert (runner.type, runner.image, runner.pull_policy, runner.cpus) == ("docker", "python:3.12-slim", "NEVER", "2")
    shell = load("io.kestra.plugin.scripts.shell.Commands", """\
        commands: ["true"]
        taskRunner: {type: Docker}
        """)
    assert declared_runner(shell.tasks[0].properties, "ubuntu:latest").image == "ubuntu:latest"
    legacy = load("script", """\
        script: print(1)
        docker: {image: python:3.11, pullPolicy: ALWAYS}
        taskRunner: {type: docker}
        """)
    assert declared_runner(legacy.tasks[0].properties, "x") == TaskRunner(type="docker", image="python:3.11", pull_policy="ALWAYS")
    process = load("commands", """\
        commands: ["true"]
        taskRunner: {type: io.kestra.plugin.core.runner.Process}
        """)
    assert declared_runner(process.tasks[0].properties, "x") == TaskRunner()
    assert declared_runner({}, "x") == TaskRunner()


@pytest.mark.parametrize(("body", "line", "expected"), [
    ("script: print(1)\ntaskRunner: {type: Docker, pullPolicy: SOMETIMES}\n", 7, "`pullPolicy`: expected one of IF_NOT_PRESENT, ALWAYS, NEVER"),
    ("script: print(1)\ntaskRunner: {type: Docker, gpus: all}\n", 7, "unknown Docker task runner property `gpus`"),
    ("script: print(1)\ntaskRunner: {type: Kubernetes}\n", 7, "unknown task runner 'Kubernetes'"),
    ("beforeCommands: [\"pip list\"]\n", 4, "task `t` (script) needs exactly one of `script` or `commands`"),
    ("script: print(1)\ncommands: [\"python x.py\"]\n", 4, "needs exactly one of `script` or `commands`, not 2"),
])
def test_bad_runner_or_script_declarations_name_file_line_and_field(body: str, line: int, expected: str) -> None:
    with pytest.raises(FlowError) as caught:
        load("script", body)
    text = str(caught.value)
    assert f"runners.yaml:{line}:" in text and expected in text, text


def test_task_log_keeps_order_and_bounds_its_size() -> None:
    log = TaskLog(head_chars=1000, tail_chars=2000)
    for number in range(1000):
        log.add("INFO" if number % 2 else "WARN", f"line {number}")
    entries = log.entries()
    messages = [entry["message"] for entry in entries]
    assert messages[0] == "line 0" and messages[-1] == "line 999"
    notes = [message for message in messages if "log lines left out" in message]
    assert len(notes) == 1
    kept = [int(message.split()[1]) for message in messages if message.startswith("line ")]
    assert kept == sorted(kept) and len(kept) < 100
    assert int(notes[0].split()[1]) == 1000 - len(kept)
    assert all(entry["timestamp"].endswith("Z") and entry["level"] in ("INFO", "WARN") for entry in entries)
    long = TaskLog()
    long.add("INFO", "x" * 100_000)
    assert len(long.entries()[0]["message"]) < 5000


def test_an_attempt_log_prints_under_a_header_naming_its_task_run(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.progress import print_attempt_log
    from client.task_logs import AttemptLog

    lines = [{"timestamp": "2026-11-30T10:00:01.250Z", "level": "INFO", "message": "reading"},
             {"timestamp": "2026-11-30T10:00:02.500Z", "level": "WARN", "message": "slow disk"}]
    print_attempt_log(AttemptLog("partition", "tr-1", "partition [file_1.parquet]", 2, "FAILED", lines))
    print_attempt_log(AttemptLog("quiet", "tr-2", "quiet", 1, "SUCCESS", []))
    assert capsys.readouterr().out.splitlines() == [
        "  ── partition [file_1.parquet] · attempt 2 · FAILED · 2 lines",
        "     10:00:01.250 INFO  reading",
        "     10:00:02.500 WARN  slow disk",
        "  ── quiet · attempt 1 · SUCCESS · no output",
    ]
