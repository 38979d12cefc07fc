"""The Python `script` runnable (Kestra's python Script and Commands), run as `commands` are.

The script is written to a file in a fresh working directory and run by the worker's own Python
(where the published `kestra` package is installed, so `from kestra import Kestra` works and speaks
the `::{json}::` protocol), or by `python` inside a Docker image. Commands see the worker's Python
first on PATH, as in an activated virtualenv.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.api import DOCKER_RUNNER, SCRIPT_ACTIVITY, CommandsRequest, CommandsResult, ScriptRequest
from activities.commands import run_commands_with
from activities.secrets.task import TaskSecrets
from activities.task_runners import check_runner

SCRIPT_FILE = "tflow_script.py"
"""Name of the script's file in the working directory (relative, so a container finds it too)."""
CONTAINER_PYTHON = ["python"]


def python_command(request: ScriptRequest) -> list[str]:
    """The Python that runs the script: the task's `python`, else the worker's interpreter (or the
    image's `python` in a container)."""
    if request.python:
        return list(request.python)
    return list(CONTAINER_PYTHON) if request.task_runner.type == DOCKER_RUNNER else [sys.executable]


def script_env(request: ScriptRequest) -> dict[str, str]:
    """Unbuffered output (logs arrive as they are printed) and, for a process, the worker's Python
    first on PATH; the task's own `env` wins."""
    env = {"PYTHONUNBUFFERED": "1"}
    if request.task_runner.type != DOCKER_RUNNER:
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)])
    env.update({str(key): str(value) for key, value in request.env.items()})
    return env


def commands_of(request: ScriptRequest, workdir: str) -> CommandsRequest:
    """The shell commands that run the script (or the task's commands) in `workdir`."""
    if request.script is not None:
        main = [shlex.join([*python_command(request), SCRIPT_FILE])]
    else:
        main = list(request.commands)
    return CommandsRequest(
        run_id=request.run_id, task_id=request.task_id, task_run_id=request.task_run_id,
        commands=main, before_commands=list(request.before_commands), env=script_env(request),
        interpreter=list(request.interpreter), working_directory=workdir, timeout_s=request.timeout_s,
        task_runner=request.task_runner, output=list(request.output),
        input_files=dict(request.input_files), output_files=list(request.output_files),
        root_run_id=request.root_run_id,
    )


@activity.defn(name=SCRIPT_ACTIVITY)
async def run_script(request: ScriptRequest) -> CommandsResult:
    """Run a `script` task in a fresh working directory, removed afterwards (one per attempt); its
    script's secrets are resolved when it is written, masked in what it returns (`activities.secrets`).
    Like `commands`, every error ends the task once (non-retryably); only a lost worker is retried."""
    secrets = TaskSecrets.of(request)
    try:
        await check_runner(request.task_id, request.task_runner)
    except ApplicationError as error:
        raise secrets.masked_error(error) from None
    try:
        workdir = tempfile.mkdtemp(prefix="tflow-")
        try:
            if request.script is not None:
                fd = os.open(os.path.join(workdir, SCRIPT_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    file.write(secrets.resolve(request.script))
            return await run_commands_with(commands_of(request, workdir), secrets)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    except ApplicationError as error:  # a secret not found
        raise secrets.masked_error(error) from None
    except OSError as error:  # the working directory or the script's file could not be written
        raise secrets.masked_error(ApplicationError(f"Cannot prepare the script: {error}", type="CommandError",
                                                    non_retryable=True)) from None
