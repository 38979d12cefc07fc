"""`tflow webui [FLOW | RUN_ID]`: serve the web view of a flow and its runs on a local port.

Like `tflow run`: with no Temporal address it brings its own (the embedded dev server, or the one
already listening on the default port) and an in-process worker, so runs started from the page
progress; with an address it only reads and starts runs, and workers run elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import (
    ExitCode,
    check_task_runner,
    fail,
    find_subflows,
    load_runnable,
    log_to_file,
    run_async,
    until_interrupted,
)
from cli.options import Address, FlowsDirs, Namespace, Profile, TaskQueue, TaskRunner, UiUrl
from client.connection import ClusterSettings, cluster_settings
from client.embedded import command_temporal, worker_log_file
from client.webui.server import WebContext, serve
from temporal_flows.language.loader import LoadedFlow
from temporal_flows.metadata import DEFAULT_TASK_QUEUE

FLOW_SUFFIXES = (".yaml", ".yml")


def register(app: typer.Typer) -> None:
    app.command("webui")(webui)


def webui(
    target: Optional[str] = typer.Argument(None, help="A flow file (the page starts runs of it) or a run id (the page follows it); none: recent runs."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Local port of the page."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on; the page answers only requests addressed to "
                             "127.0.0.1, localhost, [::1] or this name, at its port."),
    flows_dir: FlowsDirs = [],
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    ui_url_base: UiUrl = None,
    profile: Profile = None,
    task_runner: TaskRunner = "auto",
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

    if not cluster.address:
        log_to_file(worker_log_file())
    run_async(_serve(cluster, task_queue, ui_url_base, task_runner, WebPage(host, port, loaded, subflows, run_id)))


@dataclass(frozen=True)
class WebPage:
    """What the page serves and where: the flow it starts runs of, or the run it follows."""

    host: str
    port: int
    loaded: Optional[LoadedFlow]
    subflows: dict[str, dict[str, Any]]
    run_id: Optional[str]


async def _serve(cluster: ClusterSettings, task_queue: str, ui_url_base: Optional[str], task_runner: str, page: WebPage) -> None:
    note = lambda message: typer.secho(message, fg=typer.colors.BRIGHT_BLACK)  # noqa: E731
    async with command_temporal(cluster, task_queue, ui_url=ui_url_base, task_runner=task_runner, note=note) as temporal:
        connection = temporal.connection
        context = WebContext(temporal.client, connection.namespace, task_queue, connection.ui_base, page.loaded,
                             page.subflows, page.run_id)
        try:
            server = await serve(context, page.host, page.port, report=lambda refusal: typer.echo(refusal, err=True))
        except OSError as error:
            raise fail(f"cannot listen on {page.host}:{page.port}: {error.strerror or error}", ExitCode.INVALID) from None
        try:
            url = server.url + (f"runs/{page.run_id}" if page.run_id else "")
            typer.echo(f"Web view at {url} (Ctrl-C to stop)", err=False)
            await until_interrupted()
            if temporal.embedded:
                typer.echo("Stopping: the in-process worker lets running tasks finish first; runs left unfinished "
                           "go on when a worker runs again (`tflow webui`, `tflow worker`).", err=True)
        finally:
            await server.cleanup()
