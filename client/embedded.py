"""The Temporal a command brings when no address names one: a dev server and an in-process worker.

`tflow run` and `tflow webui` without `--address` (nor `TEMPORAL_ADDRESS`, nor a profile with an
address) reuse the Temporal server already listening on the default port (e.g. `tflow server`), else
start the embedded dev server (its SQLite file under the user's data directory, so runs outlive it),
and run a worker in the process, so the runs they start progress. With an address they only connect:
workers run elsewhere. `command_temporal` is that choice, made once for both commands.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, Optional

from temporalio.client import Client

from client.connection import ClusterSettings, Connection, TemporalUnreachable, connect, known_ui_base
from client.devserver import DevServer, default_db_filename, free_port, port_is_free
from client.temporal_cli import default_data_dir
from client.worker import create_worker
from temporal_flows.metadata import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE, DEFAULT_UI_PORT

WORKER_LOG = "worker.log"
"""Where the in-process worker's logs (task output included) belong, under the data directory."""


def worker_log_file() -> Path:
    """The in-process worker's log file: `<data dir>/worker.log` (the commands send logging there,
    keeping the terminal for progress and results)."""
    return default_data_dir() / WORKER_LOG


def _silent(message: str) -> None:
    """The default `note`: say nothing."""


@dataclass(frozen=True)
class CommandTemporal:
    """A command's Temporal, connected: its client, where it is (namespace, task queue, Web UI) and
    whether this process brought it (then its server, if started here, and its worker stop with it)."""

    client: Client
    connection: Connection
    embedded: bool


@asynccontextmanager
async def command_temporal(
    cluster: ClusterSettings,
    task_queue: str = DEFAULT_TASK_QUEUE,
    *,
    ui_url: Optional[str] = None,
    task_runner: str = "auto",
    note: Callable[[str], None] = _silent,
) -> AsyncIterator[CommandTemporal]:
    """The cluster `cluster` names (connect only), else a local Temporal (`_local_server`) with a
    worker of this process polling `task_queue` (`task_runner`: its setting for Docker tasks).

    `ui_url` (`--ui-url`) wins over the Web UI known for the server. On exit the embedded worker
    stops first (letting running tasks finish), then a dev server started here."""
    if cluster.address:
        connection = Connection.to(cluster, task_queue, ui_url)
        yield CommandTemporal(await connect(connection), connection, embedded=False)
        return
    namespace = cluster.namespace
    async with AsyncExitStack() as stack:
        address, ui_base = await _local_server(stack, namespace, note)
        client = await connect(address, namespace)
        await stack.enter_async_context(create_worker(client, task_queue, task_runner=task_runner))
        yield CommandTemporal(client, Connection(address, namespace, task_queue, ui_url or ui_base), embedded=True)


async def _local_server(
    stack: AsyncExitStack, namespace: str, note: Callable[[str], None] = _silent
) -> tuple[str, Optional[str]]:
    """The address and Web UI of a Temporal server already answering on the default port, else of a
    dev server started now on it (or on free ports when they are taken) and stopped by `stack`.

    `note` hears which of the two it is; a dev server that cannot be obtained or started raises
    `TemporalUnreachable` (exit code 3), with the reason."""
    default_port = int(DEFAULT_ADDRESS.rsplit(":", 1)[1])
    if not port_is_free(default_port):
        try:
            await connect(DEFAULT_ADDRESS, namespace)
        except TemporalUnreachable:
            pass
        else:
            note(f"Using the Temporal server already running at {DEFAULT_ADDRESS}")
            return DEFAULT_ADDRESS, known_ui_base(DEFAULT_ADDRESS)
    server = DevServer(
        port=default_port if port_is_free(default_port) else free_port(),
        ui_port=DEFAULT_UI_PORT if port_is_free(DEFAULT_UI_PORT) else free_port(),
        db_filename=default_db_filename(),
        namespace=namespace,
    )
    note(f"Starting an embedded Temporal dev server ({server.db_filename})")
    try:
        await server.astart()
    except RuntimeError as error:  # the CLI cannot be found or obtained, or the server did not start
        raise TemporalUnreachable(str(error)) from None
    stack.callback(server.stop)
    return server.address, server.ui_url
