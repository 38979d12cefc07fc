"""What every `tflow` command shares: connection options, exit codes, and running async commands."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Awaitable

import typer
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.task_runners import WORKER_TASK_RUNNERS
from client.connection import ConnectionConfigError, TemporalUnreachable
from client.subflows import resolve_subflows
from temporal_flows.language.loader import LoadedFlow, load_flow
from temporal_flows.language.validate import not_runnable_yet
from temporal_flows.metadata import DEFAULT_TASK_QUEUE
from temporal_flows.model.problems import FlowError


class ExitCode:
    """SPEC §6: 0 SUCCESS/WARNING, 1 FAILED/CANCELLED, 2 invalid flow or usage, 3 cannot reach Temporal."""

    OK = 0
    FAILED = 1
    INVALID = 2
    UNREACHABLE = 3


def exit_code_for(state: str) -> int:
    return ExitCode.OK if state in ("SUCCESS", "WARNING") else ExitCode.FAILED


AddressOption = typer.Option(
    None, "--address",
    help="Temporal frontend host:port; wins over env TEMPORAL_ADDRESS, which wins over the config profile's "
    "(default 127.0.0.1:7233; `run`: the embedded server).",
)
NamespaceOption = typer.Option(
    None, "--namespace",
    help="Temporal namespace; wins over env TEMPORAL_NAMESPACE, then the config profile's (default: default).",
)
ProfileOption = typer.Option(
    None, "--profile",
    help="Profile of the Temporal CLI's config file: address, namespace, TLS, API key (env TEMPORAL_PROFILE, "
    "default: default; the file: $TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml).",
)
TaskQueueOption = typer.Option(
    DEFAULT_TASK_QUEUE, "--task-queue", envvar="TFLOW_TASK_QUEUE", help="Task queue of the flow workers.", show_envvar=True
)
TaskRunnerOption = typer.Option(
    "auto", "--task-runner", envvar="TFLOW_TASK_RUNNER", show_envvar=True,
    help="auto: each task as it declares (Docker needs a reachable engine) | process: Docker tasks run as local processes.",
)
UiUrlOption = typer.Option(
    None, "--ui-url", envvar="TEMPORAL_UI_URL",
    help="Base URL of the Temporal Web UI (default: known for Temporal Cloud and a local dev server, else unknown).",
    show_envvar=True,
)


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


def load_runnable(flow: Path) -> LoadedFlow:
    """A flow every task of which can run now; else every problem, exit code 2."""
    try:
        loaded = load_flow(flow)
    except FlowError as error:
        raise fail(str(error), ExitCode.INVALID) from None
    refused = not_runnable_yet(loaded)
    if refused:
        raise fail(str(FlowError(refused)), ExitCode.INVALID)
    return loaded


FlowsDirOption = typer.Option(
    [], "--flows-dir", help="Where flows called as subflows are found, recursively (repeatable; default: the flow file's directory)."
)


def find_subflows(loaded: LoadedFlow, flows_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """The flows `loaded` calls as subflows (`client.subflows`); a missing or bad one exits 2."""
    try:
        return resolve_subflows(loaded, flows_dirs or None)
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


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_console(level: int = logging.INFO) -> None:
    """A worker's own output: task logs and Temporal's, on stderr."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def log_to_file(path: Path, level: int = logging.INFO) -> None:
    """`tflow run`'s in-process worker: keep its logs (task output included) out of the progress view."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
