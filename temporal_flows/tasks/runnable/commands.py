"""`commands`: shell commands in one `/bin/sh` on a worker (Kestra's shell Commands), as an activity."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from activities.api import COMMANDS_ACTIVITY, CommandsRequest, CommandsResult
from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.tasks.base import PropertySpec, TaskType, runnable_properties
from temporal_flows.tasks.runnable.activity import ActivityCall, RunIdentity, RunnableOutcome, RunnableType, extractors_of, with_extracted
from temporal_flows.tasks.runnable.task_runners import declared_runner


DEFAULT_IMAGE = "ubuntu:latest"
"""The image of a Docker `commands` task that names none (Kestra's shell default)."""


def build(task: Task, props: dict[str, Any], identity: RunIdentity) -> ActivityCall:
    request = CommandsRequest(
        run_id=identity.run_id,
        task_id=task.id,
        task_run_id=identity.task_run_id,
        root_run_id=identity.root_run_id,
        commands=list(props["commands"]),
        env=dict(props.get("env", {})),
        interpreter=list(props.get("interpreter") or ["/bin/sh", "-c"]),
        working_directory=props.get("working_directory"),
        fail_fast=bool(props.get("fail_fast", True)),
        timeout_s=task.timeout_s,
        output=extractors_of(props),
        before_commands=list(props.get("before_commands") or []),
        task_runner=declared_runner(props, DEFAULT_IMAGE),
        input_files=dict(props.get("input_files") or {}),
        output_files=list(props.get("output_files") or []),
    )
    return ActivityCall(COMMANDS_ACTIVITY, request, dict)  # read() takes the plain dict: no dataclass round trip


def read(result: CommandsResult | dict[str, Any]) -> RunnableOutcome:
    data = result if isinstance(result, dict) else asdict(result)
    outputs = {"exitCode": data.get("exit_code"), "vars": data.get("vars") or {}}
    if data.get("output_files") is not None:
        outputs["outputFiles"] = data["output_files"]  # name → reference to the stored file
    return RunnableOutcome(with_extracted(outputs, data), list(data.get("metrics") or []))


TYPE = TaskType(
    "commands",
    TaskKind.RUNNABLE,
    ("io.kestra.plugin.scripts.shell.Commands", "io.kestra.plugin.scripts.shell.Script", "io.kestra.core.tasks.scripts.Bash"),
    runnable_properties(
        commands=PropertySpec("string_list", required=True),
        env=PropertySpec("mapping"),
        before_commands=PropertySpec("string_list"),
        task_runner=PropertySpec("task_runner"),
        container_image=PropertySpec("string"),
        docker=PropertySpec("mapping", description="Kestra's older form: {image, pullPolicy, ...}"),
        interpreter=PropertySpec("string_list"),
        fail_fast=PropertySpec("boolean"),
        input_files=PropertySpec("mapping", description="file name → content, written into the working directory"),
        output_files=PropertySpec("string_list", description="globs of files kept in the run's storage"),
        working_directory=PropertySpec(
            "string", description="run here (on the worker; kept) instead of a fresh directory: a step "
            "flow's `process` steps run in the flow file's directory",
        ),
    ),
    "shell commands in a fresh working directory",
    runnable=RunnableType(build, read),
)
