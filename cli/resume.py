"""`tflow resume RUN_ID [TASK] [--input k=v]...`: resume a paused run (SPEC §8).

With no TASK every paused task run of the run resumes (Kestra resumes an execution as a whole);
TASK names a task id (every paused run of it, e.g. each for-each item) or one task run id.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

import typer

from cli.common import ExitCode, fail, key_value_pairs, run_async
from cli.options import Address, JsonOutput, Namespace, Profile, RunId, TaskQueue, UiUrl
from client.connection import Connection, connect
from client.resume import ResumeRefused, ResumeUnanswered, resume_run
from temporal_flows.metadata import DEFAULT_TASK_QUEUE


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)


def resume(
    run_id: RunId,
    task: Optional[str] = typer.Argument(None, help="A paused task id or task run id (default: every paused task)."),
    input: List[str] = typer.Option([], "--input", help="A value for the pause's `onResume` inputs, as key=value (repeatable)."),
    as_json: JsonOutput = False,
    address: Address = None,
    namespace: Namespace = None,
    task_queue: TaskQueue = DEFAULT_TASK_QUEUE,
    ui_url_base: UiUrl = None,
    profile: Profile = None,
) -> None:
    """Resume a paused run: every paused task, or TASK's.

    With --json: {run_id, resumed: [{task_id, value, inputs}, ...]}."""
    inputs = key_value_pairs(input, "--input")
    connection = Connection.of(address, namespace, task_queue, ui_url_base, profile)
    resumed = run_async(_resume(connection, run_id, task, inputs))
    if as_json:
        typer.echo(json.dumps({"run_id": run_id, "resumed": resumed}, indent=2))
        return
    for entry in resumed:
        label = entry["task_id"] if entry.get("value") is None else f"{entry['task_id']} [{entry['value']}]"
        given = f" with {json.dumps(entry['inputs'])}" if entry.get("inputs") else ""
        typer.echo(f"Resumed {label} of run {run_id}{given}.")


async def _resume(connection: Connection, run_id: str, task: Optional[str], inputs: dict[str, str]) -> list[dict[str, Any]]:
    client = await connect(connection)
    try:
        return await resume_run(client, run_id, task, inputs)
    except ResumeRefused as refused:
        raise fail(str(refused), ExitCode.INVALID) from None
    except ResumeUnanswered as unanswered:
        raise fail(str(unanswered), ExitCode.FAILED) from None
