"""The options and arguments several `tflow` commands share, declared once as typer `Annotated` aliases.

A command writes `address: Address = None`: the flag, its help and its environment variable live
here, the default at the parameter (typer's rule for `Annotated`), so each command's help and the
README's command table say the same thing for the same flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

Address = Annotated[Optional[str], typer.Option(
    "--address",
    help="Temporal frontend host:port; wins over env TEMPORAL_ADDRESS, which wins over the config profile's "
    "(default 127.0.0.1:7233; `run`: the embedded server).",
)]
Namespace = Annotated[Optional[str], typer.Option(
    "--namespace",
    help="Temporal namespace; wins over env TEMPORAL_NAMESPACE, then the config profile's (default: default).",
)]
Profile = Annotated[Optional[str], typer.Option(
    "--profile",
    help="Profile of the Temporal CLI's config file: address, namespace, TLS, API key (env TEMPORAL_PROFILE, "
    "default: default; the file: $TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml).",
)]
TaskQueue = Annotated[str, typer.Option(
    "--task-queue", envvar="TFLOW_TASK_QUEUE", show_envvar=True, help="Task queue of the flow workers.",
)]
"""Its default is `temporal_flows.metadata.DEFAULT_TASK_QUEUE` (`tflow worker` takes several: its own option)."""
UiUrl = Annotated[Optional[str], typer.Option(
    "--ui-url", envvar="TEMPORAL_UI_URL", show_envvar=True,
    help="Base URL of the Temporal Web UI (default: known for Temporal Cloud and a local dev server, else unknown).",
)]
TaskRunner = Annotated[str, typer.Option(
    "--task-runner", envvar="TFLOW_TASK_RUNNER", show_envvar=True,
    help="auto: each task as it declares (Docker needs a reachable engine) | process: Docker tasks run as local processes.",
)]
"""Checked by `cli.common.check_task_runner`; its default is "auto"."""
FlowsDirs = Annotated[List[Path], typer.Option(
    "--flows-dir",
    help="Where flows called as subflows are found, recursively (repeatable; default: the flow file's directory).",
)]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON instead of text (one document on stdout).")]
"""What the document holds is the command's to say, in its docstring (its help)."""
FlowFile = Annotated[Path, typer.Argument(help="The flow file (YAML).")]
PluginDefaultsFile = Annotated[Optional[Path], typer.Option(
    "--defaults",
    help="A YAML file of Kestra plugin defaults, `pluginDefaults: [{type, values, forced}]`, applied to every flow "
    "loaded (subflows too), as a namespace's: a flow's own defaults win over the file's unless those are forced.",
)]
RunId = Annotated[str, typer.Argument(help="The run id (Temporal workflow id).")]
OutputFile = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
