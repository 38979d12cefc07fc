"""`tflow worker`: a worker process for flows; Ctrl-C or SIGTERM drains it gracefully.

`--task-queue` may be given several times: the process then polls each queue with a full worker
(flows and their tasks), so it runs the flows started on any of them and the tasks routed to any of
them (`workerGroup.key`, SPEC §3.3). Every worker being alike keeps routing a matter of queues only.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer

from activities.secrets.store import SECRETS_ENV, check_secrets_path
from activities.secrets.worker import PASS_ENV_ENV
from activities.storage import STORAGE_ENV
from activities.storage.backends import StorageLocationError, parse_location
from cli.common import ExitCode, check_task_runner, fail, run_async
from cli.options import Address, Namespace, Profile, TaskRunner
from client.connection import Connection, connect
from client.worker import create_worker
from client.worker_log import LOG_BACKUPS, LOG_LEVELS, LOG_MAX_BYTES, configure_logging
from temporal_flows.metadata import DEFAULT_TASK_QUEUE

def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    address: Address = None,
    namespace: Namespace = None,
    task_queues: Optional[List[str]] = typer.Option(
        None, "--task-queue", envvar="TFLOW_TASK_QUEUE", show_envvar=True,
        help=f"Task queue to serve (flows and the tasks routed to it by workerGroup.key); repeat to serve several. Default: {DEFAULT_TASK_QUEUE}.",
    ),
    profile: Profile = None,
    max_concurrent_tasks: Optional[int] = typer.Option(None, "--max-concurrent-tasks", min=1, help="At most this many tasks at once per task queue served."),
    task_runner: TaskRunner = "auto",
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", min=0, help="Seconds running tasks get to finish on shutdown before they are cancelled."),
    storage_dir: Optional[str] = typer.Option(
        None, "--storage", envvar=STORAGE_ENV, show_envvar=True,
        help="Where the runs' big values and output files are kept, shared by every worker of the runs: a directory "
             "(default: <data dir>/storage; a mount on several machines) or s3://bucket/prefix (an S3-compatible bucket: "
             "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).",
    ),
    log_file: Optional[Path] = typer.Option(
        None, "--log-file", envvar="TFLOW_WORKER_LOG", show_envvar=True,
        help="Write the worker's log to this file, rotated by size (default: stderr, not rotated).",
    ),
    log_max_bytes: int = typer.Option(LOG_MAX_BYTES, "--log-max-bytes", min=0, help="Rotate --log-file before it passes this many bytes (10 MiB; 0: never)."),
    log_backups: int = typer.Option(LOG_BACKUPS, "--log-backups", min=0, help="Rotated files kept beside --log-file (FILE.1 is the newest)."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR. INFO: one line per task run; DEBUG adds every line a task prints."),
    secrets_path: Optional[Path] = typer.Option(
        None, "--secrets", envvar=SECRETS_ENV, show_envvar=True,
        help="secret('NAME') values: a directory of files named NAME, a YAML/JSON file of NAME: value, or an env file "
             "of NAME=value lines (plain values); looked up before the environment's SECRET_NAME (base64).",
    ),
    pass_env: Optional[List[str]] = typer.Option(
        None, "--pass-env",
        help=f"Pass this variable of the worker's environment to tasks (a glob like AWS_* allowed; repeat for several; "
             f"default: ${PASS_ENV_ENV}, comma-separated). Tasks get only PATH, HOME, LANG, LC_*, TZ, TMPDIR, their own env and these.",
    ),
) -> None:
    """Run flows and their tasks from one or more task queues until interrupted."""
    check_task_runner(task_runner)
    queues = list(dict.fromkeys(task_queues or [DEFAULT_TASK_QUEUE]))
    if any(not queue.strip() for queue in queues):
        raise fail("--task-queue: a task queue name cannot be empty", ExitCode.INVALID)
    if log_level.upper() not in LOG_LEVELS:
        raise fail(f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}", ExitCode.INVALID)
    if secrets_path is not None and (problem := check_secrets_path(secrets_path)):
        raise fail(f"--secrets: {problem}", ExitCode.INVALID)
    if storage_dir is not None and (problem := _storage_problem(storage_dir)):
        raise fail(f"--storage: {problem}", ExitCode.INVALID)
    connection = Connection.of(address, namespace, queues[0], profile=profile)
    if storage_dir is not None:
        os.environ[STORAGE_ENV] = str(storage_dir)  # read by create_worker (client.worker.storage_root)
    configure_logging(log_file, level=log_level.upper(), max_bytes=log_max_bytes, backups=log_backups)
    run_async(_serve(connection, queues, max_concurrent_tasks, drain_timeout, task_runner,
                     TaskSettings(secrets_path, list(pass_env) if pass_env else None)))


def _storage_problem(location: str) -> str | None:
    """What is wrong with a --storage setting (a directory or s3://bucket/prefix), if anything."""
    try:
        parse_location(location)
    except StorageLocationError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class TaskSettings:
    """What the worker's tasks get: secrets from this file or directory, these variables of its environment."""

    secrets_path: Optional[Path] = None
    pass_env: Optional[list[str]] = None


async def _serve(connection: Connection, queues: list[str], max_concurrent_tasks: Optional[int], drain_timeout: float,
                 task_runner: str = "auto", tasks: TaskSettings = TaskSettings()) -> None:
    client = await connect(connection)
    workers = [
        create_worker(client, queue, max_concurrent_activities=max_concurrent_tasks, graceful_shutdown_s=drain_timeout,
                      task_runner=task_runner, secrets_path=tasks.secrets_path, pass_env=tasks.pass_env)
        for queue in queues
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    names = ", ".join(repr(queue) for queue in queues)
    typer.echo(f"Worker polling task queue{'s' if len(queues) > 1 else ''} {names} on {connection.describe()}. Ctrl-C drains and stops.")
    running = {asyncio.create_task(flow_worker.run()): flow_worker for flow_worker in workers}
    await asyncio.wait({*running, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    typer.echo(f"Draining: running tasks get up to {drain_timeout:g}s to finish ...")
    await asyncio.gather(*(flow_worker.shutdown() for task, flow_worker in running.items() if not task.done()))
    for task in running:
        if task.done():
            task.result()  # a worker that stopped by itself: surface why
    typer.echo("Worker stopped.")
