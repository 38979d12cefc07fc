"""`tflow validate`: every problem of every flow at once, as `file:line:col: message`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer

from cli.common import ExitCode
from cli.options import FlowsDirs, JsonOutput
from client.subflows import resolve_subflows
from temporal_flows.language.loader import load_flow
from temporal_flows.model.problems import FlowError, Problem


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    flows: List[Path] = typer.Argument(..., help="Flow files to check."),
    as_json: JsonOutput = False,
    flows_dir: FlowsDirs = [],
) -> None:
    """Check flows without running anything; exit code 2 if any has a problem. The flows a flow
    calls as subflows are found as `tflow run` finds them (--flows-dir) and checked too.

    With --json: [{file, valid, problems}]."""
    reports = []
    for flow in flows:
        problems: list[Problem] = []
        try:
            resolve_subflows(load_flow(flow), flows_dir or None)
        except FlowError as error:
            problems = error.problems
        reports.append({"file": str(flow), "valid": not problems, "problems": [p.to_dict() for p in problems]})
        if not as_json:
            if problems:
                for problem in problems:
                    typer.secho(str(problem), err=True, fg=typer.colors.RED)
            else:
                typer.echo(f"{flow}: valid")
    if as_json:
        typer.echo(json.dumps(reports, indent=2))
    raise typer.Exit(ExitCode.OK if all(report["valid"] for report in reports) else ExitCode.INVALID)
