"""A worker in its own process, for the bench scripts: prints "ready {settings}" once it polls.

    python -m bench.worker_proc --kind interpreter|handwritten --address A --task-queue Q
        [--max-concurrent-activities N] [--settings JSON]

`interpreter` is the project's worker (`client.worker.create_worker`); after "ready" it
prints, as JSON, the settings of the Worker it built that a hand-written worker can copy
(concurrency, pollers, heartbeat throttling, ...). `handwritten` is a plain `temporalio.worker.Worker`
with the default sandbox, the bench's hand-written workflows and activity, and exactly those
settings (`--settings`), so both sides run with identical worker configuration.
SIGTERM stops the worker (graceful shutdown bounded to a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

SHARED_SETTINGS = (
    "max_concurrent_activities",
    "max_concurrent_workflow_tasks",
    "max_concurrent_local_activities",
    "max_cached_workflows",
    "max_concurrent_workflow_task_polls",
    "nonsticky_to_sticky_poll_ratio",
    "max_concurrent_activity_task_polls",
    "max_heartbeat_throttle_interval",
    "default_heartbeat_throttle_interval",
    "sticky_queue_schedule_to_start_timeout",
    "graceful_shutdown_timeout",
    "disable_eager_activity_execution",
    "max_activities_per_second",
    "max_task_queue_activities_per_second",
)
"""Worker options copied from the interpreter's Worker to the hand-written one when JSON-able."""


def _encode(value: Any) -> Any:
    if isinstance(value, timedelta):
        return {"timedelta_s": value.total_seconds()}
    json.dumps(value)  # raises for values that cannot travel (e.g. a tuner object)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"timedelta_s"}:
        return timedelta(seconds=value["timedelta_s"])
    return value


def settings_of(worker: Worker) -> dict[str, Any]:
    """The SHARED_SETTINGS the Worker was built with (explicit or default), as JSON-able values."""
    config = getattr(worker, "_config", None)
    if not isinstance(config, dict):
        raise RuntimeError("cannot read the Worker's settings (temporalio's Worker._config changed)")
    settings: dict[str, Any] = {}
    for key in SHARED_SETTINGS:
        if key in config:
            try:
                settings[key] = _encode(config[key])
            except TypeError:
                print(f"worker_proc: setting {key}={config[key]!r} cannot be copied", file=sys.stderr)
    if config.get("tuner") is not None:
        print("worker_proc: the interpreter's Worker has a tuner; it is not copied", file=sys.stderr)
    return settings


def build(kind: str, client: Client, task_queue: str, max_concurrent_activities: int,
          settings: dict[str, Any] | None) -> Worker:
    if kind == "interpreter":
        from client.worker import create_worker

        return create_worker(client, task_queue, max_concurrent_activities=max_concurrent_activities)
    if kind == "handwritten":
        from bench.handwritten import ACTIVITIES, WORKFLOWS

        options = {key: _decode(value) for key, value in (settings or {}).items()}
        options["max_concurrent_activities"] = max_concurrent_activities
        return Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES, **options)
    raise SystemExit(f"unknown --kind {kind!r}")


async def serve(args: argparse.Namespace) -> None:
    client = await Client.connect(args.address, namespace=args.namespace)
    settings = json.loads(args.settings) if args.settings else None
    worker = build(args.kind, client, args.task_queue, args.max_concurrent_activities, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        print("ready " + json.dumps({"kind": args.kind, "pid": os.getpid(), "settings": settings_of(worker)}),
              flush=True)
        await stop.wait()
        # leave __aexit__ (graceful shutdown) a bounded time; the parent SIGKILLs the group anyway
        loop.call_later(5, os._exit, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True, choices=("interpreter", "handwritten"))
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--max-concurrent-activities", type=int, default=100)
    parser.add_argument("--settings", help="JSON settings for the hand-written Worker (from an interpreter worker)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code = 0
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except BaseException as error:  # noqa: BLE001 - report, then leave without SDK teardown
        import traceback

        traceback.print_exc()
        print(f"failed: {type(error).__name__}: {error}", flush=True)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the SDK's native threads can abort interpreter finalization


if __name__ == "__main__":
    main()
