"""The shell `commands` runnable: one shell, `set -e`, Kestra's `::{json}::` output protocol.

The process runs under :func:`activities.processes.run_supervised`, so it heartbeats, dies with a
SIGKILLed worker, and is stopped as a whole process group when the activity is cancelled. Its script
(with its secrets resolved, `activities.secrets`) reaches the interpreter as a 0600 file in the
working directory, never as an argument (which `ps` shows every user); its environment is the
allow-listed one (`activities.secrets.task_environment`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.api import COMMANDS_ACTIVITY, CommandsRequest, CommandsResult
from activities.bounds import RESULT_LIMIT_BYTES, check_result_size, result_size
from activities.extracting import TextCapture, apply_extractors
from activities.processes import INLINE_SH, ProcessOutcome, run_supervised
from activities.protocol import ProtocolState
from activities.secrets.task import TaskSecrets
from activities.secrets.worker import task_environment
from activities.storage import root_run_of, stage_input_files_async, with_storage
from activities.task_log import TaskLog
from activities.task_runners import check_runner, launch_command, remove_container
from activities.wire import to_wire

HEARTBEAT_EVERY = 1.0
"""Seconds between heartbeats; the SDK throttles what it actually sends to the server."""
MESSAGE_LINES = 3
MESSAGE_CHARS = 2000
SCRIPT_FILE = ".tflow-script"
"""The script's file in the working directory (another name when that one is taken, e.g. by a task
sharing a given working directory); removed as soon as the process ends."""
SCRIPT_FLAGS = ("-c", "-e")
"""An interpreter's last argument that takes the script as text (`sh -c`, `node -e`): dropped, the
interpreter gets the script's file instead (`bash -c` → `bash ./.tflow-script`)."""


def build_script(request: CommandsRequest) -> str:
    """The commands (after `before_commands`) as one shell script, `set -e` first when the task fails fast."""
    return ("set -e\n" if request.fail_fast else "") + "\n".join([*request.before_commands, *request.commands])


def write_script(workdir: str, script: str) -> str:
    """Write `script` to a new 0600 file in `workdir`; its name (relative to `workdir`)."""
    path = os.path.join(workdir, SCRIPT_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        fd, path = tempfile.mkstemp(prefix=SCRIPT_FILE + "-", dir=workdir)
    try:
        data = memoryview(script.encode("utf-8", "surrogateescape"))  # as an argument would have been encoded
        while data:
            data = data[os.write(fd, data):]
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
    return os.path.basename(path)


def script_command(interpreter: list[str], name: str) -> list[str]:
    """The command running the script file `name` (in the working directory) with `interpreter`:
    `/bin/sh -c` sources it (`. ./name`, which the supervising shell runs itself, see
    activities.processes), `X -c` runs `X ./name`, any other interpreter gets `./name` last."""
    relative = f"./{name}"
    if tuple(interpreter) == INLINE_SH:
        return [*INLINE_SH, f". {relative}"]
    if interpreter[-1] in SCRIPT_FLAGS:
        return [*interpreter[:-1], relative]
    return [*interpreter, relative]


@dataclass
class _OutputBound:
    """The first bound the task's output passed (`activities.bounds`): the process is stopped and
    the task fails with its error; the rest of the output is not read."""

    error: ApplicationError | None = None
    passed: asyncio.Event = field(default_factory=asyncio.Event)


def _on_output(state: ProtocolState, log: TaskLog, level: str, bound: _OutputBound) -> Callable[[str], bool]:
    """Protocol lines feed the state (their logs are logged as they come), on stdout and stderr
    alike (Kestra's logger writes warnings to stderr); other lines are logs at `level`. All go to
    the task's log; the worker's log gets a copy at DEBUG only (client.worker_log)."""

    def handle(line: str) -> bool:
        if bound.error is not None:
            return True
        try:
            consumed = state.feed(line)
        except ApplicationError as error:
            bound.error = error
            bound.passed.set()
            return True
        if not consumed:
            activity.logger.debug(line)
            log.add(level, line)
            return False
        for entry in state.line_logs:
            activity.logger.debug(entry["message"])
            log.add(entry["level"], entry["message"])
        for problem in state.ignored:
            log.add("WARN", f"Ignored part of an output line: {problem}")
        return True

    return handle


def _on_stdout(state: ProtocolState, log: TaskLog, bound: _OutputBound) -> Callable[[str], bool]:
    return _on_output(state, log, "INFO", bound)


def _on_stderr(state: ProtocolState, log: TaskLog, bound: _OutputBound) -> Callable[[str], bool]:
    return _on_output(state, log, "WARN", bound)


def _result(outcome: ProcessOutcome, state: ProtocolState, log: TaskLog) -> CommandsResult:
    return CommandsResult(
        exit_code=outcome.exit_code,
        vars=state.vars,
        metrics=state.metrics,
        logs=state.result_logs(),
        stdout_tail=outcome.stdout_tail,
        stderr_tail=outcome.stderr_tail,
        log_lines=log.entries(),
    )


def failure_message(result: CommandsResult) -> str:
    """`Command failed with exit code N: <last stderr lines, else last stdout line>`, for users."""
    if result.exit_code < 0:
        head = f"Command killed by signal {_signal_name(-result.exit_code)}"
    else:
        head = f"Command failed with exit code {result.exit_code}"
    stderr = [line for line in result.stderr_tail.splitlines() if line.strip()]
    stdout = [line for line in result.stdout_tail.splitlines() if line.strip()]
    detail = "\n".join(stderr[-MESSAGE_LINES:]) if stderr else (stdout[-1] if stdout else "")
    if len(detail) > MESSAGE_CHARS:
        detail = "..." + detail[-MESSAGE_CHARS:]
    return f"{head}: {detail}" if detail else head


async def _result_of_timeout(state: ProtocolState, log: TaskLog, request: CommandsRequest, workdir: str) -> dict:
    """Failure details of a timed-out task: what its output protocol had reported so far (big values stored)."""
    result = CommandsResult(exit_code=-1, vars=state.vars, metrics=state.metrics, logs=state.result_logs(),
                            log_lines=log.entries())
    return _failure_details(await with_storage(result, request, workdir, collect_files=False))


def _failure_details(result: CommandsResult) -> dict[str, Any]:
    """A failed task's result as its failure's details; when too large for them (`activities.bounds`),
    only its log and the tails of its streams, so the failure itself is always recorded."""
    details = to_wire(result)
    if result_size(details) > RESULT_LIMIT_BYTES:
        details = to_wire(dataclasses.replace(result, vars={}, metrics=[], logs=[], extracted={}, output_files=None))
    return details


def _checked(result: CommandsResult) -> CommandsResult:
    """`result` when it fits in an activity result, else ResultTooLarge (with its log as details)."""
    try:
        check_result_size(to_wire(result), "The task's result (vars, metrics, output files after storage)")
    except ApplicationError as error:
        raise ApplicationError(error.message, _failure_details(result), type=error.type, non_retryable=True) from None
    return result


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


async def _execute(request: CommandsRequest, workdir: str, secrets: TaskSecrets) -> CommandsResult:
    """Run the script (secrets resolved, from its file) and turn its outcome into a result, or a
    non-retryable ApplicationError."""
    state, log, bound = ProtocolState(), TaskLog(), _OutputBound()
    stdout = TextCapture("stdout") if request.output else None  # what output extractors read
    await stage_input_files_async(workdir, secrets.resolve_data(request.input_files), root_run_of(request))
    task_env = {str(key): secrets.resolve(str(value)) for key, value in request.env.items()}
    script = write_script(workdir, secrets.resolve(build_script(request)))
    try:
        argv, env = launch_command(request.task_runner, request.task_run_id, script_command(request.interpreter, script),
                                   workdir, task_env, task_environment(task_env))
        outcome = await _supervise(request, workdir, argv, env, _Watch(state, log, bound, stdout), secrets)
    finally:
        _remove_file(os.path.join(workdir, script))
    return await _finish(request, workdir, _result(outcome, state, log), stdout)


@dataclass
class _Watch:
    """What reads a running task's output: its protocol state, its log, its bound, its captured stdout."""

    state: ProtocolState
    log: TaskLog
    bound: _OutputBound
    stdout: TextCapture | None


async def _supervise(request: CommandsRequest, workdir: str, argv: list[str], env: dict[str, str] | None,
                     watch: _Watch, secrets: TaskSecrets) -> ProcessOutcome:
    """The process's outcome, or the task's failure (timeout, an output bound passed, no such program)."""
    state, log, bound = watch.state, watch.log, watch.bound
    on_stdout = _on_stdout(state, log, bound)
    supervised = run_supervised(
        argv,
        cwd=workdir,
        env=env,
        on_stdout=watch.stdout.watching(on_stdout) if watch.stdout else on_stdout,
        on_stderr=_on_stderr(state, log, bound),
        heartbeat=lambda: activity.heartbeat(log.live_window()),  # the log so far, read live by clients
        heartbeat_every=HEARTBEAT_EVERY,
        inline_sh=True,
        mask=secrets.mask if secrets.masking else None,
    )
    try:
        # The task's own `timeout` is enforced here (the process group is killed on expiry), so it
        # fails the task for good instead of looking like a dead worker to Temporal.
        return await asyncio.wait_for(_unless_bound_passed(supervised, bound), timeout=request.timeout_s)
    except asyncio.CancelledError:
        await remove_container(argv, env)
        raise
    except asyncio.TimeoutError:  # before OSError: TimeoutError is an OSError since 3.11
        await remove_container(argv, env)
        raise ApplicationError(f"Task timed out after {request.timeout_s:g}s", await _result_of_timeout(state, log, request, workdir),
                               type="Timeout", non_retryable=True) from None
    except OSError as exc:
        raise ApplicationError(f"Cannot run the command: {exc}", type="CommandError",
                               non_retryable=True) from None
    except _BoundPassed as passed:
        await remove_container(argv, env)
        raise ApplicationError(passed.error.message, to_wire(CommandsResult(exit_code=-1, log_lines=log.entries())),
                               type=passed.error.type, non_retryable=True) from None


def _remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def _finish(request: CommandsRequest, workdir: str, result: CommandsResult, stdout: TextCapture | None) -> CommandsResult:
    """The finished process's result with extractors applied and big values and files stored; a
    failure (CommandFailed), or ResultTooLarge when it cannot travel as an activity result."""
    if stdout is not None and result.exit_code == 0:
        result = dataclasses.replace(result, extracted=apply_extractors(request.output, stdout.text(), "stdout"))
    result = await with_storage(result, request, workdir, collect_files=result.exit_code == 0)
    if result.exit_code != 0:
        raise ApplicationError(failure_message(result), _failure_details(result),
                               type="CommandFailed", non_retryable=True)
    return _checked(result)


class _BoundPassed(Exception):
    """The task's output passed a bound (`error` says which); the process is stopped."""

    def __init__(self, error: ApplicationError) -> None:
        super().__init__(error.message)
        self.error = error


async def _unless_bound_passed(supervised: Awaitable[ProcessOutcome], bound: _OutputBound) -> ProcessOutcome:
    """The process's outcome; when its output passes a bound first, the process is stopped (its
    group terminated as on a cancellation) and _BoundPassed raised: the output is not going to be
    used, and a script printing without end must not run on until its timeout."""
    running = asyncio.ensure_future(supervised)
    passed = asyncio.ensure_future(bound.passed.wait())
    try:
        await asyncio.wait({running, passed}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _stopped(running)
        raise
    finally:
        passed.cancel()
    if bound.error is None:
        return running.result()
    await _stopped(running)
    raise _BoundPassed(bound.error)


async def _stopped(running: asyncio.Future[ProcessOutcome]) -> None:
    """Cancel the supervised process (unless done) and wait until its group is gone; its own
    outcome or error no longer matters."""
    running.cancel()
    await asyncio.wait({running})
    if not running.cancelled():
        running.exception()  # retrieved, so asyncio does not log it as never retrieved


@activity.defn(name=COMMANDS_ACTIVITY)
async def run_commands(request: CommandsRequest) -> CommandsResult:
    """Run a `commands` task in its working directory (a fresh temporary one unless given)."""
    return await run_commands_with(request, TaskSecrets.of(request))


async def run_commands_with(request: CommandsRequest, secrets: TaskSecrets) -> CommandsResult:
    """`run_commands` with the task run's secrets (`activities.secrets`): resolved before use, masked
    in its result and errors.

    Every error ends the task: anything but an ApplicationError or a cancellation (a NUL byte in
    `env`, a failing mkdtemp, a broken output callback...) fails it once, non-retryably, as
    `ApplicationError("<Type>: <message>", type="<Type>")`; only a lost worker is retried.
    """
    try:
        return secrets.mask_result(await _run(request, secrets))
    except Exception as error:  # noqa: BLE001 - asyncio.CancelledError is a BaseException: it propagates
        raise secrets.final_error(error) from None


async def _run(request: CommandsRequest, secrets: TaskSecrets) -> CommandsResult:
    if not request.interpreter:
        raise ApplicationError("A commands task needs an interpreter", type="CommandError",
                               non_retryable=True)
    await check_runner(request.task_id, request.task_runner)
    owned = request.working_directory is None
    workdir = tempfile.mkdtemp(prefix="tflow-") if owned else _given_workdir(request.working_directory)
    try:
        return await _execute(request, workdir, secrets)
    finally:
        if owned:
            _remove_workdir(workdir)


def _remove_workdir(path: str) -> None:
    """Remove a task's own working directory; most tasks leave it empty, and a plain rmdir is far
    cheaper than rmtree's walk."""
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def _given_workdir(path: str) -> str:
    """A working directory the flow names is created if missing and never removed."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ApplicationError(f"Cannot use working directory {path}: {exc}", type="CommandError",
                               non_retryable=True) from exc
    return path
