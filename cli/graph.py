"""`tflow graph`: the resolved graph of a flow (either dialect) as text, Mermaid or Graphviz dot."""

from __future__ import annotations

import typer

from cli.common import ExitCode, fail, read_defaults
from cli.options import FlowFile, OutputFile, PluginDefaultsFile
from temporal_flows.language.graph import build_graph
from temporal_flows.language.graph_render import RENDERERS
from temporal_flows.language.loader import load_flow
from temporal_flows.model.problems import FlowError


def register(app: typer.Typer) -> None:
    app.command("graph")(graph)


def graph(
    flow: FlowFile,
    output_format: str = typer.Option("text", "--format", help="text | mermaid | dot"),
    output: OutputFile = None,
    defaults: PluginDefaultsFile = None,
) -> None:
    """Print the flow's tasks, groups and execution order (dependencies inferred from templates are
    marked as inferred); a flow with problems prints them and exits 2, like `tflow validate`."""
    renderer = RENDERERS.get(output_format)
    if renderer is None:
        raise fail(f"--format {output_format!r}: expected one of {', '.join(RENDERERS)}", ExitCode.INVALID)
    plugin_defaults = read_defaults(defaults)
    try:
        loaded = load_flow(flow, plugin_defaults)
    except FlowError as error:
        raise fail(str(error), ExitCode.INVALID) from None
    text = renderer(build_graph(loaded.flow))
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise fail(f"--output {output}: cannot write: {error.strerror or error}", ExitCode.INVALID) from None
