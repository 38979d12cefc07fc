"""What every `tflow` command shares: connection options, exit codes, and running async commands."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Optional

import typer
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from temporal_flows.metadata import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, DEFAULT_UI_PORT
from client.runs import TemporalUnreachable


class ExitCode:
    """SPEC §6: 0 SUCCESS/WARNING, 1 FAILED/CANCELLED, 2 invalid flow or usage, 3 cannot reach Temporal."""

    OK = 0
    FAILED = 1
    INVALID = 2
    UNREACHABLE = 3


def exit_code_for(state: str) -> int:
    return ExitCode.OK if state in ("SUCCESS", "WARNING") else ExitCode.FAILED


AddressOption = typer.Option(
    None, "--address", envvar="TEMPORAL_ADDRESS", help="Temporal frontend host:port.", show_envvar=True
)
NamespaceOption = typer.Option(
    DEFAULT_NAMESPACE, "--namespace", envvar="TEMPORAL_NAMESPACE", help="Temporal namespace.", show_envvar=True
)
TaskQueueOption = typer.Option(
    DEFAULT_TASK_QUEUE, "--task-queue", envvar="TFLOW_TASK_QUEUE", help="Task queue of the flow workers.", show_envvar=True
)
UiUrlOption = typer.Option(
    None, "--ui-url", envvar="TEMPORAL_UI_URL", help="Base URL of the Temporal Web UI (default: the server's host, port 8233).", show_envvar=True
)


@dataclass(frozen=True)
class Connection:
    address: str
    namespace: str
    task_queue: str
    ui_base: str

    @staticmethod
    def of(address: Optional[str], namespace: str, task_queue: str, ui_url: Optional[str] = None) -> Connection:
        address = address or DEFAULT_ADDRESS
        return Connection(address, namespace, task_queue, ui_url or default_ui_base(address))


def default_ui_base(address: str) -> str:
    """The Web UI next to a server, as the dev server serves it (`--ui-url` says otherwise)."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return f"http://{host}:{DEFAULT_UI_PORT}"


def fail(message: str, code: int) -> typer.Exit:
    """Print `message` to stderr and return the Exit to raise (no traceback, a meaningful code)."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def run_async(coroutine: Awaitable[Any]) -> Any:
    """Run a command's coroutine; an unreachable server becomes exit code 3 with a clear message."""
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except TemporalUnreachable as error:
        raise fail(str(error), ExitCode.UNREACHABLE) from None
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
