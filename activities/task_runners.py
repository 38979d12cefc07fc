"""Task runners on the worker: a task's process runs here (`process`) or in a container (`docker`).

The flow declares a runner per task; the worker decides per task run (SPEC §4): a worker started
with `--task-runner process` runs Docker tasks as local processes, and where no Docker engine is
reachable a Docker task fails at once, naming its image and how to run it as a process. The Docker
command line is built here, so it is testable without an engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence

from temporalio.exceptions import ApplicationError

from activities.api import DOCKER_RUNNER, DOCKER_UNAVAILABLE_ERROR, PROCESS_RUNNER, TaskRunner

log = logging.getLogger(__name__)

WORKER_TASK_RUNNERS = ("auto", "process")
"""A worker's setting: `auto` runs each task as declared; `process` runs Docker tasks as processes."""
PULL_FLAGS = {"IF_NOT_PRESENT": "missing", "ALWAYS": "always", "NEVER": "never"}
"""Kestra's pull policies as `docker run --pull` values."""
ENGINE_PROBE_TIMEOUT = 5.0
ENGINE_CHECK_TTL = 30.0
"""Seconds an engine check is trusted, so a burst of Docker tasks probes the engine once."""

_engine_checks: dict[str | None, tuple[float, str | None]] = {}


def effective_runner(declared: TaskRunner, worker_setting: str) -> TaskRunner:
    """The runner this worker uses for a task that declared `declared`."""
    if worker_setting not in WORKER_TASK_RUNNERS:
        raise ValueError(f"task runner setting {worker_setting!r}: expected one of {', '.join(WORKER_TASK_RUNNERS)}")
    if declared.type == DOCKER_RUNNER and worker_setting == PROCESS_RUNNER:
        return TaskRunner()
    return declared


def docker_unreachable_reason(host: str | None = None) -> str | None:
    """Why no Docker engine can run containers from this worker, or None when one answers
    (`docker version`); cached for ENGINE_CHECK_TTL seconds."""
    now = time.monotonic()
    cached = _engine_checks.get(host)
    if cached is not None and now - cached[0] < ENGINE_CHECK_TTL:
        return cached[1]
    reason = _probe_engine(host)
    _engine_checks[host] = (now, reason)
    return reason


def _probe_engine(host: str | None) -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "the docker CLI is not on this worker's PATH"
    env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    try:
        probe = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], env=env, capture_output=True,
                               text=True, timeout=ENGINE_PROBE_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return f"the Docker engine did not answer within {ENGINE_PROBE_TIMEOUT:g}s"
    except OSError as error:
        return f"cannot run the docker CLI: {error}"
    if probe.returncode != 0:
        lines = [line for line in probe.stderr.splitlines() if line.strip()]
        return f"no Docker engine is reachable ({lines[-1].strip() if lines else f'docker version exited {probe.returncode}'})"
    return None


def docker_unavailable_message(task_id: str, image: str | None, reason: str) -> str:
    """What a user reads when a Docker task cannot run here: the image, why, and what to do."""
    return (
        f"Task `{task_id}` runs in the Docker image {image or '(none given)'}, but this worker cannot run "
        f"containers: {reason}. To run it as a local process instead, start the worker with "
        "`tflow worker --task-runner process` (or run the flow with `tflow run --task-runner process`), "
        "or declare `taskRunner: {type: Process}` on the task."
    )


async def check_runner(task_id: str, runner: TaskRunner) -> None:
    """Fail at once (non-retryable) when the task needs Docker and no engine is reachable (the
    probe runs in a thread: the worker's event loop never waits on the docker CLI)."""
    if runner.type != DOCKER_RUNNER:
        return
    if not runner.image:
        raise ApplicationError(f"Task `{task_id}` runs in Docker but names no `containerImage`",
                               type="CommandError", non_retryable=True)
    reason = await asyncio.to_thread(docker_unreachable_reason, runner.host)
    if reason is not None:
        raise ApplicationError(docker_unavailable_message(task_id, runner.image, reason),
                               type=DOCKER_UNAVAILABLE_ERROR, non_retryable=True)


def container_name(task_run_id: str) -> str:
    """A unique, recognisable container name for one attempt of a task run."""
    safe = "".join(char if char.isalnum() or char in "_.-" else "-" for char in task_run_id)[:40]
    return f"tflow-{safe}-{uuid.uuid4().hex[:8]}"


def docker_command(runner: TaskRunner, argv: Sequence[str], workdir: str, env_names: Sequence[str],
                   name: str) -> list[str]:
    """`docker run` of `argv` in `runner.image`: the working directory mounted at the same path
    and used as the container's, the task's environment passed by name (values travel in the
    docker CLI's environment, not on its command line), the pull policy, removed when done."""
    command = ["docker", "run", "--rm", "--name", name, "--pull", PULL_FLAGS.get(runner.pull_policy, "missing"),
               "--volume", f"{workdir}:{workdir}", "--workdir", workdir]
    for volume in runner.volumes:
        command += ["--volume", volume]
    for env_name in env_names:
        command += ["--env", env_name]
    if runner.user:
        command += ["--user", runner.user]
    if runner.network_mode:
        command += ["--network", runner.network_mode]
    if runner.cpus:
        command += ["--cpus", runner.cpus]
    if runner.memory:
        command += ["--memory", runner.memory]
    entry_point = list(runner.entry_point or [])
    if entry_point:
        command += ["--entrypoint", entry_point[0]]
    if not runner.image:
        raise ValueError("a Docker task runner needs an image")
    return [*command, runner.image, *entry_point[1:], *argv]


def launch_command(runner: TaskRunner, task_run_id: str, argv: Sequence[str], workdir: str,
                   task_env: Mapping[str, str], env: Mapping[str, str] | None) -> tuple[list[str], dict[str, str] | None]:
    """(argv, environment) that run `argv` in `workdir` with `runner`: unchanged for a process (`env`
    is the task's allow-listed one, `activities.secrets.task_environment`); wrapped in `docker run`
    for Docker, where the docker CLI (the worker's tool: it may need DOCKER_*, proxies, its config)
    gets the worker's environment plus the task's variables, and passes on only those, by name."""
    if runner.type == PROCESS_RUNNER:
        return list(argv), dict(env) if env is not None else None
    cli_env = dict(os.environ)
    cli_env.update({str(key): str(value) for key, value in task_env.items()})
    if runner.host:
        cli_env["DOCKER_HOST"] = runner.host
    return docker_command(runner, argv, workdir, sorted(str(key) for key in task_env), container_name(task_run_id)), cli_env



REMOVE_TIMEOUT = 10.0


async def remove_container(argv: Sequence[str], env: Mapping[str, str] | None) -> None:
    """After a cancelled or timed-out `docker run` (`argv` as `launch_command` built it): remove
    its container, which killing the docker CLI's process group leaves running. Best effort; a
    process's `argv` needs nothing."""
    if list(argv[:2]) != ["docker", "run"] or "--name" not in argv:
        return
    name = argv[list(argv).index("--name") + 1]
    try:
        removing = await asyncio.create_subprocess_exec(
            "docker", "rm", "--force", name, env=dict(env) if env is not None else None,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.wait_for(removing.wait(), timeout=REMOVE_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        log.warning("could not remove the container %s", name)
