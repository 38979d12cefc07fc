"""`tflow schema`: the JSON Schema of the flow language, for editors (SPEC §8)."""

from __future__ import annotations

import json

import typer

from cli.common import ExitCode
from cli.options import OutputFile
from temporal_flows.language.schema import flow_schema


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)


def schema(
    output: OutputFile = None,
) -> None:
    """Print the JSON Schema of flows; point an editor at it with
    `# yaml-language-server: $schema=<file or URL>` on a flow's first line."""
    text = json.dumps(flow_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        typer.secho(f"{output}: cannot write the schema: {error.strerror or error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(ExitCode.INVALID) from None
    typer.echo(f"wrote {output}", err=True)
