"""What every `tflow` command shares: exit codes, failing with a message, loading flows, running async
commands, logging (the shared options are `cli.options`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable

import typer
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.task_runners import WORKER_TASK_RUNNERS
from client.connection import ConnectionConfigError, TemporalUnreachable
from client.run_list import since_time
from client.subflows import resolve_subflows
from client.worker_log import LOG_FORMAT, configure_logging
from temporal_flows.language.loader import DefaultsFile, LoadedFlow, load_defaults_file, load_flow
from temporal_flows.language.validate import not_runnable_yet
from temporal_flows.model.problems import FlowError


class ExitCode:
    """SPEC §6: 0 SUCCESS/WARNING, 1 FAILED/CANCELLED, 2 invalid flow or usage, 3 cannot reach Temporal."""

    OK = 0
    FAILED = 1
    INVALID = 2
    UNREACHABLE = 3


def exit_code_for(state: str) -> int:
    return ExitCode.OK if state in ("SUCCESS", "WARNING") else ExitCode.FAILED


def key_value_pairs(items: list[str], option: str) -> dict[str, str]:
    """`--input`/`--label` values `key=value` as a mapping (a later key wins); exit 2 on a malformed one."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"{option} {item!r}: expected key=value", ExitCode.INVALID)
        pairs[key.strip()] = value
    return pairs


def check_task_runner(value: str) -> None:
    """Exit 2 on a `--task-runner` other than auto | process."""
    if value not in WORKER_TASK_RUNNERS:
        raise fail(f"--task-runner {value!r}: expected one of {', '.join(WORKER_TASK_RUNNERS)}", ExitCode.INVALID)


def fail(message: str, code: int) -> typer.Exit:
    """Print `message` to stderr and return the Exit to raise (no traceback, a meaningful code)."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def read_defaults(path: Path | None) -> DefaultsFile | None:
    """The plugin defaults of `--defaults` (None without it); a bad file exits 2 with its problems."""
    if path is None:
        return None
    try:
        return load_defaults_file(path)
    except FlowError as error:
        raise fail(str(error), ExitCode.INVALID) from None


def load_runnable(flow: Path, defaults: DefaultsFile | None = None) -> LoadedFlow:
    """A flow every task of which can run now (with the plugin defaults of `--defaults`); else every
    problem, exit code 2."""
    try:
        loaded = load_flow(flow, defaults)
    except FlowError as error:
        raise fail(str(error), ExitCode.INVALID) from None
    refused = not_runnable_yet(loaded)
    if refused:
        raise fail(str(FlowError(refused)), ExitCode.INVALID)
    return loaded


def find_subflows(loaded: LoadedFlow, flows_dirs: list[Path], defaults: DefaultsFile | None = None) -> dict[str, dict[str, Any]]:
    """The flows `loaded` calls as subflows (`client.subflows`), with the same plugin defaults; a
    missing or bad one exits 2."""
    try:
        return resolve_subflows(loaded, flows_dirs or None, defaults)
    except FlowError as error:
        raise fail(str(error), ExitCode.INVALID) from None


def run_async(coroutine: Awaitable[Any]) -> Any:
    """Run a command's coroutine; an unreachable server becomes exit code 3 with a clear message."""
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except TemporalUnreachable as error:
        raise fail(str(error), ExitCode.UNREACHABLE) from None
    except ConnectionConfigError as error:
        raise fail(str(error), ExitCode.INVALID) from None
    except RPCError as error:
        raise fail(f"Temporal refused the request ({error.status.name}): {error.message}", ExitCode.FAILED) from None
    except WorkflowQueryFailedError as error:
        raise fail(f"the run could not answer a query: {error.message}", ExitCode.FAILED) from None


async def until_interrupted() -> None:
    """Wait for Ctrl-C or SIGTERM: how a serving command (`webui`, `codec-server`) is told to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def log_to_console(level: int = logging.INFO) -> None:
    """A serving command's own logs (a worker's: task logs and Temporal's) on stderr."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def log_to_file(path: Path, level: int = logging.INFO) -> None:
    """`tflow run`'s in-process worker: keep its logs out of the progress view, in a file rotated
    like `tflow worker --log-file`'s (client.worker_log defaults)."""
    configure_logging(path, level=level)


def since_option(given: str | None) -> datetime | None:
    """`--since` as given (a duration back from now, or an ISO date-time), or exit 2 saying why."""
    if given is None:
        return None
    try:
        return since_time(given, datetime.now(timezone.utc))
    except ValueError as error:
        raise fail(f"--since: {error}", ExitCode.INVALID) from None
