"""`script`: Python on a worker (Kestra's python Script with `script`, python Commands with
`commands`), as an activity; same `::{json}::` protocol and outputs as `commands`."""

from __future__ import annotations

import shlex
from typing import Any

from activities.api import SCRIPT_ACTIVITY, CommandsResult, ScriptRequest
from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.tasks.base import PropertySpec, TaskType, runnable_properties
from temporal_flows.tasks.runnable import commands
from temporal_flows.tasks.runnable.activity import ActivityCall, RunIdentity, RunnableType, extractors_of
from temporal_flows.tasks.runnable.task_runners import declared_runner

DEFAULT_IMAGE = "ghcr.io/kestra-io/kestrapy:latest"
"""The image of a Docker `script` task that names none (Kestra's Python image, with `kestra`)."""


def _python(value: Any) -> list[str] | None:
    """`python: python3.12` (or `"uv run python"`) as a command; None: the worker decides."""
    if value is None or value == "":
        return None
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def build(task: Task, props: dict[str, Any], identity: RunIdentity) -> ActivityCall:
    request = ScriptRequest(
        run_id=identity.run_id,
        task_id=task.id,
        task_run_id=identity.task_run_id,
        root_run_id=identity.root_run_id,
        script=props.get("script"),
        commands=list(props.get("commands") or []),
        before_commands=list(props.get("before_commands") or []),
        python=_python(props.get("python")),
        interpreter=list(props.get("interpreter") or ["/bin/sh", "-c"]),
        env=dict(props.get("env") or {}),
        task_runner=declared_runner(props, DEFAULT_IMAGE),
        timeout_s=task.timeout_s,
        output=extractors_of(props),
        input_files=dict(props.get("input_files") or {}),
        output_files=list(props.get("output_files") or []),
    )
    return ActivityCall(SCRIPT_ACTIVITY, request, CommandsResult)


TYPE = TaskType(
    "script",
    TaskKind.RUNNABLE,
    ("io.kestra.plugin.scripts.python.Script", "io.kestra.plugin.scripts.python.Commands"),
    runnable_properties(
        script=PropertySpec("string", description="Python source, run by `python` in the working directory"),
        commands=PropertySpec("string_list", description="shell commands, with the worker's Python first on PATH"),
        before_commands=PropertySpec("string_list"),
        interpreter=PropertySpec("string_list"),
        python=PropertySpec("string", description="the Python that runs `script` (default: the worker's)"),
        env=PropertySpec("mapping"),
        task_runner=PropertySpec("task_runner"),
        container_image=PropertySpec("string"),
        docker=PropertySpec("mapping", description="Kestra's older form: {image, pullPolicy, ...}"),
        input_files=PropertySpec("mapping", description="file name → content, written into the working directory"),
        output_files=PropertySpec("string_list", description="globs of files kept in the run's storage"),
        warning_on_std_err=PropertySpec("boolean"),
    ),
    "a Python script or commands",
    runnable=RunnableType(build, commands.read),
    one_of=("script", "commands"),
)
