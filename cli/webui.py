"""`tflow webui [FLOW | RUN_ID]`: serve the web view of a flow and its runs on a local port.

Like `tflow run`: with no Temporal address it brings its own (the embedded dev server, or the one
already listening on the default port) and an in-process worker, so runs started from the page
progress; with an address it only reads and starts runs, and workers run elsewhere.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    AddressOption,
    ExitCode,
    FlowsDirOption,
    NamespaceOption,
    ProfileOption,
    TaskQueueOption,
    TaskRunnerOption,
    UiUrlOption,
    check_task_runner,
    fail,
    find_subflows,
    load_runnable,
    log_to_file,
    run_async,
)
from cli.run import WORKER_LOG, _embedded_server
from client.connection import Connection, cluster_settings, connect
from client.temporal_cli import default_data_dir
from client.webui.server import WebContext, serve
from client.worker import create_worker

FLOW_SUFFIXES = (".yaml", ".yml")


def register(app: typer.Typer) -> None:
    app.command("webui")(webui)


def webui(
    target: Optional[str] = typer.Argument(None, help="A flow file (the page starts runs of it) or a run id (the page follows it); none: recent runs."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Local port of the page."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on; the page answers only requests addressed to "
                             "127.0.0.1, localhost, [::1] or this name, at its port."),
    flows_dir: List[Path] = FlowsDirOption,
    address: Optional[str] = AddressOption,
    namespace: Optional[str] = NamespaceOption,
    task_queue: str = TaskQueueOption,
    ui_url_base: Optional[str] = UiUrlOption,
    profile: Optional[str] = ProfileOption,
    task_runner: str = TaskRunnerOption,
) -> None:
    """A local page with the flow's graph and its runs' live task states, plus the Temporal UI link."""
    check_task_runner(task_runner)
    loaded, subflows, run_id = None, {}, None
    if target and (Path(target).exists() or target.endswith(FLOW_SUFFIXES)):
        loaded = load_runnable(Path(target))
        subflows = find_subflows(loaded, flows_dir)
    elif target:
        run_id = target
    cluster = cluster_settings(address, namespace, profile)
    if task_runner != "auto" and cluster.address:
        raise fail("--task-runner applies to the worker `tflow webui` embeds (no Temporal address)", ExitCode.INVALID)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            if cluster.address:
                connection = Connection.to(cluster, task_queue, ui_url_base)
                client = await connect(connection)
            else:
                log_to_file(default_data_dir() / WORKER_LOG)
                server_address, ui_base = await _embedded_server(stack, cluster.namespace, quiet=False)
                connection = Connection(server_address, cluster.namespace, task_queue, ui_url_base or ui_base)
                client = await connect(server_address, cluster.namespace)
                await stack.enter_async_context(create_worker(client, task_queue, task_runner=task_runner))
            context = WebContext(client, connection.namespace, task_queue, connection.ui_base, loaded, subflows, run_id)
            try:
                server = await serve(context, host, port, report=lambda refusal: typer.echo(refusal, err=True))
            except OSError as error:
                raise fail(f"cannot listen on {host}:{port}: {error.strerror or error}", ExitCode.INVALID) from None
            stack.push_async_callback(server.cleanup)
            page = server.url + (f"runs/{run_id}" if run_id else "")
            typer.echo(f"Web view at {page} (Ctrl-C to stop)", err=False)
            await _until_interrupted()
            if not cluster.address:
                typer.echo("Stopping: the in-process worker lets running tasks finish first; runs left unfinished "
                           "go on when a worker runs again (`tflow webui`, `tflow worker`).", err=True)

    run_async(main())


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
