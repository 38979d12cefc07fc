"""The `commands` activity in a real activity context (ActivityEnvironment, no server needed)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.api import CommandsRequest, CommandsResult
from activities.commands import run_commands
from activities.protocol import ProtocolState


def request(*commands: str, **kwargs: object) -> CommandsRequest:
    return CommandsRequest(run_id="run-1", task_id="t1", task_run_id="tr-1", commands=list(commands), **kwargs)


def gone(pid: int) -> bool:
    """No such process, or a zombie (runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def run(req: CommandsRequest, env: ActivityEnvironment | None = None) -> CommandsResult:
    return await (env or ActivityEnvironment()).run(run_commands, req)


async def test_success_with_protocol_outputs_and_metrics(caplog: pytest.LogCaptureFixture) -> None:
    payload = {"outputs": {"rows": 42, "name": "x"},
               "metrics": [{"name": "rows", "type": "counter", "value": 42, "tags": {"table": "t"}}],
               "logs": [{"level": "WARN", "message": "from protocol"}]}
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    caplog.set_level(logging.DEBUG)
    result = await run(request("echo hello", f"echo '::{json.dumps(payload)}::'", "echo warned >&2",
                               "echo '::{\"outputs\": {\"name\": \"y\"}}::'", "sleep 1.3"), env)
    assert result.exit_code == 0
    assert result.vars == {"rows": 42, "name": "y"}
    assert result.metrics == [{"name": "rows", "type": "counter", "value": 42, "tags": {"table": "t"}}]
    assert result.logs == [{"level": "WARN", "message": "from protocol"}]
    assert result.stdout_tail == "hello"
    assert result.stderr_tail == "warned"
    assert beats, "the activity must heartbeat while the process runs (first beat after 1 s)"
    task_log = {line["message"]: line["level"] for line in result.log_lines}
    assert (task_log["hello"], task_log["warned"], task_log["from protocol"]) == ("INFO", "WARN", "WARN")
    assert not any("::" in message for message in task_log)
    # The worker's own log gets task output at DEBUG only (client.worker_log).
    levels = {record.getMessage().split(" (")[0]: record.levelno for record in caplog.records}
    assert (levels["hello"], levels["warned"], levels["from protocol"]) == (logging.DEBUG,) * 3


async def test_failure_carries_exit_code_and_stderr() -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(request("echo '::{\"outputs\": {\"partial\": true}}::'", "echo working",
                          "echo 'disk is full' >&2", "exit 3"))
    error = caught.value
    assert error.type == "CommandFailed"
    assert error.non_retryable
    assert error.message == "Command failed with exit code 3: disk is full"
    details = error.details[0]
    assert details["exit_code"] == 3
    assert details["vars"] == {"partial": True}
    assert details["stdout_tail"] == "working"


async def test_failure_without_stderr_uses_the_last_stdout_line() -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(request("echo first", "echo second", "false"))
    assert caught.value.message == "Command failed with exit code 1: second"


async def test_set_e_stops_at_the_first_failing_command(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError, match="exit code 1"):
        await run(request("false", "echo ran > after", working_directory=str(tmp_path)))
    assert not (tmp_path / "after").exists()


async def test_without_fail_fast_later_commands_run(tmp_path: Path) -> None:
    result = await run(request("false", "echo ran > after", working_directory=str(tmp_path), fail_fast=False))
    assert result.exit_code == 0
    assert (tmp_path / "after").read_text() == "ran\n"


async def test_env_and_given_working_directory(tmp_path: Path) -> None:
    workdir = tmp_path / "made" / "for-task"
    result = await run(request('echo "$GREETING $COUNT" > out.txt', "pwd", "test -n \"$PATH\"",
                               env={"GREETING": "hi there", "COUNT": "3"}, working_directory=str(workdir)))
    assert (workdir / "out.txt").read_text() == "hi there 3\n"
    assert result.stdout_tail == str(workdir)
    assert workdir.is_dir(), "a working directory the flow names is kept"


async def test_default_working_directory_is_fresh_and_removed() -> None:
    first = (await run(request("pwd", "touch marker"))).stdout_tail
    second = (await run(request("pwd", "ls"))).stdout_tail.splitlines()
    assert Path(first).name.startswith("tflow-")
    assert second[0] != first and second[1:] == []
    assert not os.path.exists(first)


async def test_custom_interpreter() -> None:
    result = await run(request("import sys", "print('py', sys.argv[1:])", interpreter=["python3", "-c"],
                               fail_fast=False))
    assert result.stdout_tail == "py []"


async def test_missing_interpreter_is_a_command_error() -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(request("true", interpreter=["/nonexistent/tflow-shell", "-c"]))
    assert caught.value.type == "CommandError"
    assert caught.value.non_retryable


async def test_cancellation_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    env = ActivityEnvironment()
    task = asyncio.create_task(run(request(f"sleep 30 & echo $! > {pidfile}.tmp", f"mv {pidfile}.tmp {pidfile}",
                                           "wait"), env))
    deadline = time.monotonic() + 5
    while not pidfile.exists():
        assert time.monotonic() < deadline and not task.done(), "the task never started"
        await asyncio.sleep(0.02)
    sleeper = int(pidfile.read_text())
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 2
    while not gone(sleeper) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert gone(sleeper)


async def test_task_timeout_kills_the_process_and_fails_for_good(tmp_path):
    """A task's own `timeout` kills its process group and fails non-retryably with type Timeout."""
    import os
    from temporalio.testing import ActivityEnvironment
    from temporalio.exceptions import ApplicationError
    from activities.api import CommandsRequest
    from activities.commands import run_commands

    pid_file = tmp_path / "sleep.pid"
    request = CommandsRequest(
        run_id="r", task_id="slow", task_run_id="tr",
        commands=[f"sleep 30 & echo $! > {pid_file}; wait"], timeout_s=0.5,
    )
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(run_commands, request)
    assert raised.value.type == "Timeout"
    assert raised.value.non_retryable
    sleep_pid = int(pid_file.read_text())
    assert not os.path.exists(f"/proc/{sleep_pid}") or open(f"/proc/{sleep_pid}/stat").read().split()[2] == "Z"


async def test_a_short_task_sends_no_heartbeat() -> None:
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    assert (await run(request("true"), env)).exit_code == 0
    assert beats == []


async def test_a_nul_byte_in_env_fails_once_and_for_good() -> None:
    started = time.monotonic()
    with pytest.raises(ApplicationError) as caught:
        await run(request("true", env={"BAD": "a\0b"}))
    assert caught.value.non_retryable
    assert caught.value.type == "ValueError"
    assert caught.value.message.startswith("ValueError: ")
    assert "null byte" in caught.value.message
    assert time.monotonic() - started < 2


async def test_a_failing_mkdtemp_fails_once_and_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args: object, **kwargs: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", no_space)
    with pytest.raises(ApplicationError) as caught:
        await run(request("true"))
    assert caught.value.non_retryable
    assert caught.value.type == "OSError"
    assert caught.value.message == "OSError: [Errno 28] No space left on device"


async def test_an_unusable_tmpdir_fails_once_and_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/tflow-tmp")
    with pytest.raises(ApplicationError) as caught:
        await run(request("true"))
    assert caught.value.non_retryable
    assert caught.value.type == "FileNotFoundError"
    assert "/nonexistent/tflow-tmp" in caught.value.message


async def test_an_output_callback_error_fails_once_and_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: ProtocolState, line: str) -> bool:
        raise KeyError(f"cannot handle {line}")

    monkeypatch.setattr(ProtocolState, "feed", broken)
    with pytest.raises(ApplicationError) as caught:
        await run(request("echo one", "echo two"))
    assert caught.value.non_retryable
    assert caught.value.type == "KeyError"
    assert caught.value.message == "KeyError: 'cannot handle one'"


async def test_cancellation_is_not_turned_into_a_failure() -> None:
    env = ActivityEnvironment()
    task = asyncio.create_task(run(request("sleep 30"), env))
    await asyncio.sleep(0.2)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
