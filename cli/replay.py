"""`tflow replay`: replay runs' histories against the installed interpreter (SPEC §8) — how a user
checks an upgrade against their real runs before deploying it. Exit 0 when every decision matches,
1 when a run diverged (the first diverging event named), 2 for bad arguments, 3 when Temporal is unreachable."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import List, Optional

import typer
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from cli.common import ExitCode, fail, run_async, since_option
from cli.options import Address, JsonOutput, Namespace, Profile
from client.codec import CodecKeyError, environment_data_converter
from client.connection import Connection, configure_runtime, connect
from client.replay import (
    HistoryFileError, ReplayOutcome, ReplaySession, RunKey, flow_replayer, read_history_file, replay_history, replay_runs,
    runs_matching,
)
from client.run_list import RunFilter, visibility_query

DEFAULT_LIMIT = 100


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    run_ids: Optional[List[str]] = typer.Argument(None, metavar="RUN_ID", help="Run ids (Temporal workflow ids) to replay, with the child runs they started."),
    all_runs: bool = typer.Option(False, "--all", help="Replay the runs of flows Temporal lists (open and closed, newest first)."),
    since: Optional[str] = typer.Option(None, "--since", help="With --all: runs started since: a duration back from now (`1h`, `7d`) or an ISO date-time."),
    flow_id: Optional[str] = typer.Option(None, "--flow", help="With --all: only runs of this flow id (and the child runs they started)."),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", min=1, help="At most this many runs in all, child runs included."),
    history: List[Path] = typer.Option([], "--history", help="A history JSON file (`temporal workflow show -w ID --output json`) to replay offline (repeatable)."),
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    profile: Profile = None,
) -> None:
    """Replay runs against the installed interpreter: exit 0 when every decision matches, 1 with the
    first diverging event of each run that does not.

    With --json: {runs: [{run_id, events, ok, error, event_id, event_type, source}], ok, failed}
    (ok, failed: how many runs)."""
    _check_arguments(run_ids or [], all_runs, since, flow_id, history)
    _quiet_replay_logs()
    if history:
        outcomes = run_async(_replay_files(history, as_json))
    else:
        connection = Connection.of(address, namespace, profile=profile)
        wanted = RunFilter(flow_id=flow_id, since=since_option(since)) if all_runs else None
        outcomes = run_async(_replay_server(connection, run_ids or [], wanted, limit, as_json))
    if as_json:
        failed = sum(1 for outcome in outcomes if not outcome.ok)
        document = {"runs": [outcome.as_json() for outcome in outcomes], "ok": len(outcomes) - failed, "failed": failed}
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_summary(outcomes, limit if not history else None)
    raise typer.Exit(ExitCode.FAILED if any(not outcome.ok for outcome in outcomes) else ExitCode.OK)


def _check_arguments(run_ids: list[str], all_runs: bool, since: Optional[str], flow_id: Optional[str], history: list[Path]) -> None:
    """Exactly one of RUN_ID..., --all, --history; --since and --flow only with --all."""
    given = [name for name, present in (("RUN_ID", run_ids), ("--all", all_runs), ("--history", history)) if present]
    if len(given) != 1:
        what = f"{' and '.join(given)} together" if given else "nothing to replay"
        raise fail(f"{what}: give run ids, --all (with --since, --flow) or --history FILE", ExitCode.INVALID)
    for option, value in (("--since", since), ("--flow", flow_id)):
        if value is not None and not all_runs:
            raise fail(f"{option} selects runs for --all; with RUN_ID or --history it has no meaning", ExitCode.INVALID)


def _quiet_replay_logs() -> None:
    """A diverging replay is this command's result, not a warning: the SDK's own lines about the
    failing workflow task (core and Python side) stay out of stderr unless TFLOW_DEBUG is set."""
    configure_runtime()
    if not os.environ.get("TFLOW_DEBUG"):
        logging.getLogger("temporalio").setLevel(logging.CRITICAL)


async def _replay_files(files: list[Path], quiet: bool) -> list[ReplayOutcome]:
    try:
        histories = [(read_history_file(path), path) for path in files]
        replayer = flow_replayer(environment_data_converter())
    except (HistoryFileError, CodecKeyError) as error:
        raise fail(str(error), ExitCode.INVALID) from None
    outcomes = []
    async with ReplaySession(replayer) as session:
        for loaded, path in histories:
            outcomes.append(await replay_history(session, loaded, source=str(path)))
            if not quiet:
                typer.echo(outcome_line(outcomes[-1]))
    return outcomes


async def _replay_server(connection: Connection, run_ids: list[str], wanted: Optional[RunFilter], limit: int,
                         quiet: bool) -> list[ReplayOutcome]:
    client = await connect(connection)
    runs = await runs_matching(client, visibility_query(wanted), limit) if wanted else await _named_runs(client, run_ids)
    outcomes = []
    async with ReplaySession(flow_replayer(client.data_converter)) as session:
        async for outcome in replay_runs(client, session, runs, limit):
            outcomes.append(outcome)
            if not quiet:
                typer.echo(outcome_line(outcome))
    return outcomes


async def _named_runs(client: Client, run_ids: list[str]) -> list[RunKey]:
    """Each named run's latest execution; a run id that names none exits 2."""
    runs = []
    for run_id in run_ids:
        try:
            description = await client.get_workflow_handle(run_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise fail(f"no run {run_id!r} in this namespace", ExitCode.INVALID) from None
            raise
        runs.append(RunKey(run_id, description.run_id))
    return runs


def outcome_line(outcome: ReplayOutcome) -> str:
    """`<run id>  <n> events  OK`, or `DIVERGED at event N (Type): reason`."""
    name = outcome.source or outcome.run_id
    if outcome.ok:
        verdict = "OK"
    elif outcome.event_id is not None:
        verdict = f"DIVERGED at event {outcome.event_id} ({outcome.event_type}): {outcome.error}"
    else:
        verdict = f"FAILED: {outcome.error}"
    return f"{name}  {outcome.events} events  {verdict}"


def _print_summary(outcomes: list[ReplayOutcome], limit: Optional[int]) -> None:
    """One line after the runs' own (printed as each was replayed)."""
    if not outcomes:
        typer.echo("No runs to replay.")
        return
    failed = sum(1 for outcome in outcomes if not outcome.ok)
    ended = f" (--limit {limit} reached)" if limit is not None and len(outcomes) >= limit else ""
    typer.echo(f"Replayed {len(outcomes)} run{'s' if len(outcomes) != 1 else ''}{ended}: "
               f"{len(outcomes) - failed} OK, {failed} diverged.")
