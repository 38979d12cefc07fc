"""`tflow resume RUN_ID [TASK] [--input k=v]...`: resume a paused run (SPEC §8).

With no TASK every paused task run of the run resumes (Kestra resumes an execution as a whole);
TASK names a task id (every paused run of it, e.g. each for-each item) or one task run id.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

import typer

from cli.common import AddressOption, ExitCode, NamespaceOption, ProfileOption, TaskQueueOption, UiUrlOption, fail, run_async
from client.connection import Connection, connect
from client.resume import ResumeRefused, ResumeUnanswered, resume_run


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)


def resume(
    run_id: str = typer.Argument(..., help="The run id (Temporal workflow id)."),
    task: Optional[str] = typer.Argument(None, help="A paused task id or task run id (default: every paused task)."),
    input: List[str] = typer.Option([], "--input", help="A value for the pause's `onResume` inputs, as key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was resumed as JSON."),
    address: Optional[str] = AddressOption,
    namespace: Optional[str] = NamespaceOption,
    task_queue: str = TaskQueueOption,
    ui_url_base: Optional[str] = UiUrlOption,
    profile: Optional[str] = ProfileOption,
) -> None:
    """Resume a paused run: every paused task, or TASK's."""
    inputs = _parse_inputs(input)
    connection = Connection.of(address, namespace, task_queue, ui_url_base, profile)
    resumed = run_async(_resume(connection, run_id, task, inputs))
    if as_json:
        typer.echo(json.dumps({"run_id": run_id, "resumed": resumed}, indent=2))
        return
    for entry in resumed:
        label = entry["task_id"] if entry.get("value") is None else f"{entry['task_id']} [{entry['value']}]"
        given = f" with {json.dumps(entry['inputs'])}" if entry.get("inputs") else ""
        typer.echo(f"Resumed {label} of run {run_id}{given}.")


def _parse_inputs(items: list[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise fail(f"--input {item!r}: expected key=value", ExitCode.INVALID)
        inputs[name] = value
    return inputs


async def _resume(connection: Connection, run_id: str, task: Optional[str], inputs: dict[str, str]) -> list[dict[str, Any]]:
    client = await connect(connection)
    try:
        return await resume_run(client, run_id, task, inputs)
    except ResumeRefused as refused:
        raise fail(str(refused), ExitCode.INVALID) from None
    except ResumeUnanswered as unanswered:
        raise fail(str(unanswered), ExitCode.FAILED) from None
