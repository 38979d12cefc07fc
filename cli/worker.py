"""`tflow worker`: a worker process for flows; Ctrl-C or SIGTERM drains it gracefully."""

from __future__ import annotations

import asyncio
import signal
from typing import Optional

import typer

from cli.common import AddressOption, ExitCode, NamespaceOption, ProfileOption, TaskQueueOption, fail, log_to_console, run_async
from client.connection import Connection, connect
from client.worker import create_worker

TASK_RUNNERS = ("auto", "process")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    address: Optional[str] = AddressOption,
    namespace: Optional[str] = NamespaceOption,
    task_queue: str = TaskQueueOption,
    profile: Optional[str] = ProfileOption,
    max_concurrent_tasks: Optional[int] = typer.Option(None, "--max-concurrent-tasks", min=1, help="At most this many tasks at once on this worker."),
    task_runner: str = typer.Option("auto", "--task-runner", help="auto | process (Docker tasks are not supported yet)."),
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", min=0, help="Seconds running tasks get to finish on shutdown before they are cancelled."),
) -> None:
    """Run flows and their tasks from a task queue until interrupted."""
    if task_runner not in TASK_RUNNERS:
        raise fail(f"--task-runner {task_runner!r}: expected one of {', '.join(TASK_RUNNERS)}", ExitCode.INVALID)
    connection = Connection.of(address, namespace, task_queue, profile=profile)
    log_to_console()
    run_async(_serve(connection, max_concurrent_tasks, drain_timeout))


async def _serve(connection: Connection, max_concurrent_tasks: Optional[int], drain_timeout: float) -> None:
    client = await connect(connection)
    flow_worker = create_worker(
        client, connection.task_queue, max_concurrent_activities=max_concurrent_tasks, graceful_shutdown_s=drain_timeout
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    typer.echo(f"Worker polling task queue {connection.task_queue!r} on {connection.describe()}. Ctrl-C drains and stops.")
    running = asyncio.create_task(flow_worker.run())
    await asyncio.wait({running, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # the worker stopped by itself: surface why
        return
    typer.echo(f"Draining: running tasks get up to {drain_timeout:g}s to finish ...")
    await flow_worker.shutdown()
    typer.echo("Worker stopped.")
