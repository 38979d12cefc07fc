"""Inspecting and steering runs: `tflow status`, `tflow list`, `tflow cancel`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, replace
from typing import Annotated, Any, List, Optional

import typer
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from cli.common import ExitCode, fail, key_value_pairs, run_async, since_option
from cli.options import Address, JsonOutput, Namespace, Profile, RunId, TaskQueue, UiUrl
from cli.progress import AttemptLogPrinter, print_attempt_log, print_result
from temporal_flows.metadata import DEFAULT_TASK_QUEUE, label_term
from client.connection import Connection, connect
from client.masking import run_masker
from client.run_list import RUN_STATES, STATE_SCAN_LIMIT, RunFilter, RunListing, current_labels, find_runs
from client.runs import read_result, ui_url
from client.task_logs import AttemptLog, follow_task_logs, log_task_logs, read_task_logs

CANCEL_WAIT_SECONDS = 60.0


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("list")(list_runs)
    app.command("cancel")(cancel)


def status(
    run_id: RunId,
    task: Optional[str] = typer.Argument(None, help="With --logs: only this task's logs."),
    as_json: JsonOutput = False,
    logs: bool = typer.Option(False, "--logs", help="Also print the task runs' logs (stdout, stderr, protocol logs, log tasks' lines), each attempt's."),
    follow: bool = typer.Option(False, "--follow", "-f", help="With --logs: then print new log lines as tasks run (about every second) until the run ends."),
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    ui_url_base: UiUrl = None,
    profile: Profile = None,
) -> None:
    """The ledger of a live or finished run (with --logs, its task runs' logs).

    With --json: the run's SPEC §6 object (with --logs, each attempt's log under `logs`)."""
    if task is not None and not logs:
        raise fail(f"unexpected argument {task!r}: a task id is given with --logs (`tflow status RUN_ID --logs TASK`)", ExitCode.INVALID)
    if follow and (not logs or as_json):
        raise fail("--follow follows the logs: give it with --logs, without --json", ExitCode.INVALID)
    connection = Connection.of(address, namespace, task_queue, ui_url_base, profile)
    result, attempts = run_async(_status(connection, run_id, logs, task))
    if logs and task is not None and not any(run["task_id"] == task for run in result.get("task_runs") or []):
        raise fail(f"run {run_id!r} has no task run of {task!r}", ExitCode.INVALID)
    if as_json:
        typer.echo(json.dumps({**result, "logs": [asdict(attempt) for attempt in attempts]} if logs else result, indent=2))
        return
    print_result(result)
    if result.get("labels"):
        typer.echo("Labels: " + ", ".join(label_term(key, value) for key, value in result["labels"].items()))
    if logs:
        typer.echo("")
        for attempt in attempts:
            print_attempt_log(attempt)
        if not attempts and not follow:
            typer.echo("No task logs" + (f" for task {task!r}." if task else "."))
    if follow:
        run_async(_follow_logs(connection, run_id, task, {(attempt.task_run_id, attempt.attempt) for attempt in attempts}))


async def _status(connection: Connection, run_id: str, logs: bool = False,
                  task: Optional[str] = None) -> tuple[dict[str, Any], list[AttemptLog]]:
    client = await connect(connection)
    handle = client.get_workflow_handle(run_id)
    try:
        result = await read_result(handle)
        attempts = await read_task_logs(handle, task) if logs else []
        attempts += log_task_logs(result.get("task_runs") or [], task) if logs else []
        masker = await run_masker(handle)  # SECRET input values and secret() placeholders print as ****
        labels = await current_labels(client, run_id)
    except RPCError as error:
        raise _not_found(run_id, error) from None
    result = masker.mask({**result, "labels": labels})
    attempts = [replace(attempt, lines=masker.mask(attempt.lines)) for attempt in attempts]
    result["ui_url"] = ui_url(connection.ui_base, connection.namespace, run_id)
    return result, attempts


async def _follow_logs(connection: Connection, run_id: str, task: Optional[str], printed: set[tuple[str, int]]) -> None:
    """New log lines as the run's tasks run, until it ends (skipping the closed attempts printed
    already: the history is read from its start); then the `log` tasks' lines not printed yet."""
    handle = (await connect(connection)).get_workflow_handle(run_id)
    masker, printer = await run_masker(handle), AttemptLogPrinter()
    async for attempt in follow_task_logs(handle, live=True):
        if (task is None or attempt.task_id == task) and (attempt.live or (attempt.task_run_id, attempt.attempt) not in printed):
            printer.print(replace(attempt, lines=masker.mask(attempt.lines)))
    result = await read_result(handle)
    for attempt in log_task_logs(result.get("task_runs") or [], task):
        if (attempt.task_run_id, attempt.attempt) not in printed:
            print_attempt_log(replace(attempt, lines=masker.mask(attempt.lines)))


def _not_found(run_id: str, error: RPCError) -> typer.Exit:
    if error.status == RPCStatusCode.NOT_FOUND:
        return fail(f"no run {run_id!r} in this namespace", ExitCode.INVALID)
    return fail(f"cannot read run {run_id!r}: {error}", ExitCode.FAILED)


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_result(result)


FlowNamespace = Annotated[Optional[str], typer.Option(
    "--flow-namespace",
    help="Only runs of flows in this flow namespace or one under it (`company` holds `company.team`); "
    "--namespace is Temporal's.",
)]


def list_runs(
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many runs, newest first."),
    flow_id: Optional[str] = typer.Option(None, "--flow", help="Only runs of this flow id."),
    flow_namespace: FlowNamespace = None,
    label: List[str] = typer.Option([], "--label", help="Only runs with this label, as key=value (repeatable: all of them)."),
    state: List[str] = typer.Option([], "--state", help=f"Only runs in this state: {' | '.join(RUN_STATES)} (repeatable: any of them)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only runs started since: a duration back from now (`1h`, `7d`) or an ISO date-time."),
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    profile: Profile = None,
) -> None:
    """Recent runs of flows, with their run state (SUCCESS, WARNING, FAILED, CANCELLED, RUNNING, PAUSED, QUEUED).

    With --json: a list of {run_id, flow, namespace, state, status (Temporal's), started_at, ended_at, labels}, newest first."""
    wanted = RunFilter(flow_id=flow_id, namespace=flow_namespace, labels=key_value_pairs(label, "--label"),
                       states=_states(state), since=since_option(since))
    listing = run_async(_list(Connection.of(address, namespace, task_queue, profile=profile), limit, wanted))
    if not listing.complete:
        typer.secho(f"(looked at the {STATE_SCAN_LIMIT} newest runs matching the other filters for --state)", err=True,
                    fg=typer.colors.YELLOW)
    rows = listing.rows
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No runs.")
        return
    typer.echo(f"{'RUN ID':<40} {'FLOW':<30} {'STATE':<10} {'STARTED':<33} LABELS")
    for row in rows:
        shown = ",".join(label_term(key, value) for key, value in row["labels"].items())
        typer.echo(f"{row['run_id']:<40} {row['flow']:<30} {row['state']:<10} {row['started_at']:<33} {shown}")


def _states(given: list[str]) -> frozenset[str]:
    states = frozenset(item.strip().upper() for item in given)
    unknown = sorted(states - set(RUN_STATES))
    if unknown:
        raise fail(f"--state {unknown[0]!r}: expected one of {', '.join(RUN_STATES)}", ExitCode.INVALID)
    return states


async def _list(connection: Connection, limit: int, wanted: RunFilter) -> RunListing:
    return await find_runs(await connect(connection), limit, wanted)


def cancel(
    run_id: RunId,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the run has stopped."),
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    ui_url_base: UiUrl = None,
    profile: Profile = None,
) -> None:
    """Cancel a run: running tasks are cancelled and their processes killed.

    With --json (and --wait): the run's final SPEC §6 object."""
    connection = Connection.of(address, namespace, task_queue, ui_url_base, profile)
    result = run_async(_cancel(connection, run_id, wait))
    if result is None:
        typer.echo(f"Cancellation of {run_id} requested.")
        return
    _print(result, as_json)


async def _cancel(connection: Connection, run_id: str, wait: bool) -> Optional[dict[str, Any]]:
    client = await connect(connection)
    handle = client.get_workflow_handle(run_id)
    try:
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise fail(f"run {run_id!r} has already ended ({description.status.name if description.status else '?'})", ExitCode.FAILED)
        await handle.cancel()
    except RPCError as error:
        raise _not_found(run_id, error) from None
    if not wait:
        return None
    deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_SECONDS
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        if asyncio.get_running_loop().time() > deadline:
            raise fail(f"run {run_id!r} has not stopped after {CANCEL_WAIT_SECONDS:g}s (is a worker running?)", ExitCode.FAILED)
        await asyncio.sleep(0.25)
    result = await read_result(handle)
    result["ui_url"] = ui_url(connection.ui_base, connection.namespace, run_id)
    return result
