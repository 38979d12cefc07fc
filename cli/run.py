"""`tflow run`: validate a flow, start it, follow it with live progress (or JSON), print the result.

With no address it brings its own Temporal: an embedded dev server (SQLite file under the user's
data directory) and an in-process worker. With an address it only starts the run and waits;
workers run elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import typer
import yaml
from temporalio.client import Client, WorkflowHandle

from cli.common import (
    ExitCode,
    check_task_runner,
    exit_code_for,
    fail,
    find_subflows,
    key_value_pairs,
    load_runnable,
    log_to_file,
    read_defaults,
    run_async,
)
from cli.options import (Address, FlowFile, FlowsDirs, JsonOutput, Namespace, PluginDefaultsFile, Profile, TaskQueue, TaskRunner,
                         UiUrl)
from cli.progress import AttemptLogPrinter, ProgressPrinter, print_attempt_log, print_result, ui_line
from client.connection import ClusterSettings, Connection, cluster_settings
from client.embedded import command_temporal, worker_log_file
from client.input_files import resolve_with_files
from temporal_flows.language.inputs import InputError
from temporal_flows.language.loader import LoadedFlow
from temporal_flows.language.source import FlowYamlLoader
from temporal_flows.metadata import DEFAULT_MAX_PENDING_TASKS, DEFAULT_REDISPATCH_LIMIT, DEFAULT_TASK_QUEUE
from client.runs import InvalidRunId, check_run_id, live_result, read_result, start_run, ui_url, wait_result
from client.task_logs import follow_task_logs, log_task_logs, read_task_logs

POLL_SECONDS = 0.25
LOG_DRAIN_SECONDS = 5.0
"""How long `--logs` may take to print the last logs once the run has ended."""


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    flow: FlowFile,
    input: List[str] = typer.Option([], "--input", help="An input as key=value (repeatable); a FILE input as key=@path."),
    inputs_file: Optional[Path] = typer.Option(None, "--inputs-file", help="Inputs as a YAML/JSON mapping (--input wins; a FILE input's @path is relative to this file)."),
    label: List[str] = typer.Option([], "--label", help="A label of this run as key=value (repeatable; over the flow's)."),
    flows_dir: FlowsDirs = [],
    defaults: PluginDefaultsFile = None,
    max_workers: Optional[int] = typer.Option(None, "--max-workers", min=1, help="At most this many tasks at once in any group."),
    max_pending_tasks: int = typer.Option(DEFAULT_MAX_PENDING_TASKS, "--max-pending-tasks", min=1, max=1900, help="At most this many activities pending at once in the run (Temporal allows 2,000)."),
    redispatch_limit: int = typer.Option(DEFAULT_REDISPATCH_LIMIT, "--redispatch-limit", min=0, help="Re-dispatch a task whose worker was lost at most this many times, then fail it."),
    run_id: Optional[str] = typer.Option(None, "--id", help="The run id (Temporal workflow id); default: <flow id>-<random>."),
    detach: bool = typer.Option(False, "--detach", help="Start the run and return (needs --address)."),
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    ui_url_base: UiUrl = None,
    profile: Profile = None,
    task_runner: TaskRunner = "auto",
    logs: bool = typer.Option(False, "--logs", help="Show each task's output (stdout, stderr, logs) as it runs (new lines about every second)."),
) -> None:
    """Validate FLOW, run it on Temporal, and follow it until it ends.

    With --json: the result as one JSON object (SPEC §6); with --detach, {run_id, state, ui_url}."""
    check_task_runner(task_runner)
    _check_run_id(run_id)
    plugin_defaults = read_defaults(defaults)
    loaded = load_runnable(flow, plugin_defaults)
    subflows = find_subflows(loaded, flows_dir, plugin_defaults)
    labels = key_value_pairs(label, "--label")
    inputs, input_files = _resolve_inputs(loaded, input, inputs_file)
    cluster = cluster_settings(address, namespace, profile)  # an address from a config profile counts too
    if detach and not cluster.address:
        raise fail(
            "--detach needs a Temporal server that outlives this command: pass --address, set TEMPORAL_ADDRESS "
            "or use a config profile with an address", ExitCode.INVALID)
    if task_runner != "auto" and cluster.address:
        raise fail(
            "--task-runner applies to the worker `tflow run` embeds (no Temporal address); workers of a "
            "cluster take it as `tflow worker --task-runner process`", ExitCode.INVALID)
    limits = {"max_pending_tasks": max_pending_tasks, "redispatch_limit": redispatch_limit}
    options = _RunOptions(loaded, run_id, max_workers, limits, as_json, detach, inputs, labels, subflows, task_runner, logs,
                          input_files)
    raise typer.Exit(run_async(_run(cluster, task_queue, ui_url_base, options)))


def _check_run_id(run_id: Optional[str]) -> None:
    """`--id` names the run's directory in the storage: an unsafe one exits 2 before anything starts."""
    if run_id is None:
        return
    try:
        check_run_id(run_id)
    except InvalidRunId as error:
        raise fail(f"--id: {error}", ExitCode.INVALID) from None


@dataclass(frozen=True)
class _RunOptions:
    loaded: LoadedFlow
    run_id: Optional[str]
    max_workers: Optional[int]
    limits: dict[str, int]
    as_json: bool
    detach: bool
    inputs: dict[str, Any]
    """Resolved against the flow's declarations (coerced, defaults applied, checked)."""
    labels: dict[str, str]
    subflows: dict[str, dict[str, Any]]
    """The flows it calls as subflows, found before the start (`--flows-dir`)."""
    task_runner: str = "auto"
    """The embedded worker's setting for Docker tasks (`--task-runner`)."""
    logs: bool = False
    """Show task runs' logs as they run (`--logs`); `log` tasks' lines at the end."""
    input_files: dict[str, Path] = field(default_factory=dict)
    """FILE inputs' files, stored for the run when it starts (`client.input_files`)."""


def _resolve_inputs(loaded: LoadedFlow, inputs: list[str], inputs_file: Optional[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The run's inputs, from `--inputs-file` then `--input` (which wins), coerced and checked
    before anything starts, and FILE inputs' files (`@path`; relative to the inputs file for its
    values): a bad or missing one exits 2 naming it."""
    given = _read_inputs_file(inputs_file) if inputs_file else {}
    relative_to = {name: inputs_file.parent for name in given} if inputs_file else {}
    flags = key_value_pairs(inputs, "--input")
    given.update(flags)
    for name in flags:
        relative_to.pop(name, None)
    try:
        return resolve_with_files(loaded.flow.inputs, given, relative_to)
    except InputError as error:
        details = "\n".join(f"  {message}" for message in error.messages)
        raise fail(f"{loaded.flow.source_file}: invalid inputs:\n{details}", ExitCode.INVALID) from None


def _read_inputs_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of input id → value."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=FlowYamlLoader)  # YAML 1.2 booleans, as flows
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"--inputs-file {path}: cannot read it: {error}", ExitCode.INVALID) from None
    except yaml.YAMLError as error:
        raise fail(f"--inputs-file {path}: invalid YAML/JSON: {error}", ExitCode.INVALID) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise fail(f"--inputs-file {path}: expected a mapping of input id → value, got {type(data).__name__}", ExitCode.INVALID)
    return {str(key): value for key, value in data.items()}


async def _run(cluster: ClusterSettings, task_queue: str, ui_url_base: Optional[str], options: _RunOptions) -> int:
    """Start and follow the run on the cluster `cluster` names, else on the embedded Temporal (its
    notes on stderr with --json, so stdout carries the JSON object only)."""
    if not cluster.address:
        log_to_file(worker_log_file())
    note = lambda message: typer.secho(message, err=options.as_json, fg=typer.colors.BRIGHT_BLACK)  # noqa: E731
    async with command_temporal(cluster, task_queue, ui_url=ui_url_base, task_runner=options.task_runner,
                                note=note) as temporal:
        return await _start_and_follow(temporal.client, temporal.connection, options, embedded=temporal.embedded)
    raise AssertionError("unreachable")


async def _start_and_follow(client: Client, connection: Connection, options: _RunOptions, *, embedded: bool) -> int:
    warn = lambda message: typer.secho(f"warning: {message}", err=True, fg=typer.colors.YELLOW)  # noqa: E731
    try:
        handle = await start_run(
            client, options.loaded, task_queue=connection.task_queue, run_id=options.run_id,
            max_workers=options.max_workers, inputs=options.inputs, labels=options.labels, warn=warn,
            subflows=options.subflows, input_files=options.input_files, **options.limits,
        )
    except InputError as error:  # a FILE input the storage did not take
        raise fail("\n".join(error.messages), ExitCode.INVALID) from None
    link = ui_url(connection.ui_base, connection.namespace, handle.id, handle.result_run_id)
    if options.detach:
        if options.as_json:
            typer.echo(json.dumps({"run_id": handle.id, "state": "RUNNING", "ui_url": link}))
        else:
            typer.echo(f"Started run {handle.id}\n{ui_line(link)}")
        return ExitCode.OK
    if not options.as_json:
        typer.echo(f"Run {handle.id} started. {ui_line(link)}")
    result = await _follow(handle, show_progress=not options.as_json, embedded=embedded,
                           logs=options.logs and not options.as_json)
    result["ui_url"] = link
    if options.as_json and options.logs:
        attempts = [*await read_task_logs(handle), *log_task_logs(result.get("task_runs") or [])]
        result["logs"] = [asdict(attempt) for attempt in attempts]
    if options.as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for attempt in log_task_logs(result.get("task_runs") or []) if options.logs else []:
            print_attempt_log(attempt)
        print_result(result)
        if embedded:
            typer.secho(
                "The embedded server has stopped; run `tflow server` to browse this run's history at the link above.",
                fg=typer.colors.BRIGHT_BLACK,
            )
    return exit_code_for(result.get("state", "FAILED"))


async def _print_logs(handle: WorkflowHandle[Any, Any]) -> None:
    """Each task run attempt's log as soon as its activity closes, until the run ends."""
    try:
        printer = AttemptLogPrinter()
        async for attempt in follow_task_logs(handle, live=True):
            printer.print(attempt)
    except Exception as error:  # noqa: BLE001 - logs are best effort; the result is what counts
        typer.secho(f"warning: cannot follow the logs: {error}", err=True, fg=typer.colors.YELLOW)


async def _follow(handle: WorkflowHandle[Any, Any], *, show_progress: bool, embedded: bool, logs: bool = False) -> dict[str, Any]:
    """Wait for the result while printing progress (and with `logs`, each attempt's log as it
    ends); Ctrl-C cancels an embedded run (its worker is this process) and only stops following a
    run on a cluster."""
    printer = ProgressPrinter() if show_progress else None
    log_task = asyncio.create_task(_print_logs(handle)) if logs else None
    result_task = asyncio.create_task(wait_result(handle))
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    try:
        while not result_task.done():
            if interrupted.is_set():
                if not embedded:
                    typer.echo(f"\nStopped following; the run goes on. Cancel it with `tflow cancel {handle.id}`.", err=True)
                    return {**await read_result(handle), "state": "RUNNING"}
                typer.echo(f"\nCancelling run {handle.id} ...", err=True)
                await handle.cancel()
                interrupted.clear()
            if printer is not None:
                try:
                    printer.update(await live_result(handle))
                except Exception:  # noqa: BLE001 - progress is best effort; the result is what counts
                    pass
            await asyncio.wait({result_task}, timeout=POLL_SECONDS)
        result = result_task.result()
        if log_task is not None:  # it ends with the run's history: let it print the last logs
            await asyncio.wait({log_task}, timeout=LOG_DRAIN_SECONDS)
        if printer is not None:
            printer.update(result)
        return result
    finally:
        if log_task is not None and not log_task.done():
            log_task.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
