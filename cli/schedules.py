"""`tflow deploy`, `tflow undeploy`, `tflow schedules`: a flow's Schedule triggers as Temporal
Schedules (SPEC §5). Everything is checked before the server is touched: trigger types that cannot
be deployed and each trigger's inputs are problems with their place in the file, exit code 2."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import ExitCode, fail, load_runnable, read_defaults, run_async
from cli.options import Address, FlowFile, JsonOutput, Namespace, PluginDefaultsFile, Profile, TaskQueue
from client.connection import Connection, cluster_settings, connect
from client.schedules import Deployed, Planned, list_schedules, plan
from client.schedules import deploy as deploy_schedules
from client.schedules import undeploy as undeploy_schedules
from temporal_flows.language.loader import DefaultsFile, LoadedFlow, load_flow
from temporal_flows.metadata import DEFAULT_TASK_QUEUE
from temporal_flows.model.problems import FlowError


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("undeploy")(undeploy)
    app.command("schedules")(schedules)


def deploy(
    flow: FlowFile,
    defaults: PluginDefaultsFile = None,
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    profile: Profile = None,
) -> None:
    """Create or update a Temporal Schedule per Schedule trigger of FLOW; remove those of gone triggers.

    Scheduled runs go to --task-queue: run a worker there. With --json: {flow, schedules: [{schedule_id, action}]}."""
    plugin_defaults = read_defaults(defaults)
    loaded = load_runnable(flow, plugin_defaults)
    planned = _plan(loaded, plugin_defaults)
    cluster = cluster_settings(address, namespace, profile)
    if not cluster.address:
        raise fail(
            "deploy needs a Temporal server that outlives this command (a schedule on the embedded server would "
            "stop with it): pass --address, set TEMPORAL_ADDRESS or use a config profile with an address",
            ExitCode.INVALID,
        )
    connection = Connection.to(cluster, task_queue)
    done = run_async(_deploy(connection, loaded, planned))
    if as_json:
        typer.echo(json.dumps({"flow": _flow_name(loaded), "schedules": [asdict(entry) for entry in done]}, indent=2))
        return
    if not done:
        typer.echo(f"{_flow_name(loaded)} has no Schedule trigger: nothing to deploy.")
    for entry in done:
        typer.echo(f"{entry.action.capitalize()} schedule {entry.schedule_id}")
    if any(entry.action != "removed" for entry in done):
        typer.echo(f"Scheduled runs start on task queue {connection.task_queue!r} of {connection.describe()}; "
                   "see them with `tflow schedules` and `tflow list`.")


def _plan(loaded: LoadedFlow, defaults: DefaultsFile | None) -> list[Planned]:
    try:
        return plan(loaded, defaults)
    except FlowError as error:
        raise fail(str(error), ExitCode.INVALID) from None


async def _deploy(connection: Connection, loaded: LoadedFlow, planned: list[Planned]) -> list[Deployed]:
    client = await connect(connection)
    warn = lambda message: typer.secho(f"warning: {message}", err=True, fg=typer.colors.YELLOW)  # noqa: E731
    return await deploy_schedules(client, loaded, planned, task_queue=connection.task_queue, warn=warn)


def undeploy(
    flow: FlowFile,
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    profile: Profile = None,
) -> None:
    """Remove every Temporal Schedule of FLOW (runs already started go on).

    With --json: {flow, removed: [<schedule id>, ...]}."""
    loaded = _load(flow)
    connection = Connection.of(address, namespace, task_queue, profile=profile)
    removed = run_async(_undeploy(connection, loaded))
    if as_json:
        typer.echo(json.dumps({"flow": _flow_name(loaded), "removed": removed}, indent=2))
        return
    if not removed:
        typer.echo(f"{_flow_name(loaded)} has no schedule on {connection.describe()}.")
    for identifier in removed:
        typer.echo(f"Removed schedule {identifier}")


async def _undeploy(connection: Connection, loaded: LoadedFlow) -> list[str]:
    return await undeploy_schedules(await connect(connection), loaded)


def schedules(
    flow: Optional[Path] = typer.Argument(None, help="Only this flow's schedules."),
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    profile: Profile = None,
) -> None:
    """Deployed flow schedules with their next run times.

    With --json: a list of {schedule_id, flow, trigger, cron, timezone, paused, next_runs, recent_runs, task_queue}."""
    loaded = _load(flow) if flow is not None else None
    connection = Connection.of(address, namespace, task_queue, profile=profile)
    rows = run_async(_schedules(connection, loaded))
    if as_json:
        typer.echo(json.dumps([row.to_dict() for row in rows], indent=2))
        return
    if not rows:
        typer.echo("No schedules.")
        return
    typer.echo(f"{'SCHEDULE ID':<40} {'CRON':<16} {'TIME ZONE':<16} {'PAUSED':<7} NEXT RUNS")
    for row in rows:
        paused = "yes" if row.paused else "no"
        typer.echo(f"{row.schedule_id:<40} {row.cron:<16} {row.timezone:<16} {paused:<7} {', '.join(row.next_runs) or '-'}")


async def _schedules(connection: Connection, loaded: Optional[LoadedFlow]) -> list[Any]:
    return await list_schedules(await connect(connection), loaded)


def _load(flow: Path) -> LoadedFlow:
    """The flow, for its namespace, id and triggers (undeploying needs no runnable tasks)."""
    try:
        return load_flow(flow)
    except FlowError as error:
        raise fail(str(error), ExitCode.INVALID) from None


def _flow_name(loaded: LoadedFlow) -> str:
    return f"{loaded.flow.namespace}.{loaded.flow.id}"
