"""Cost of one `commands` activity call against a plain asyncio subprocess (no Temporal server).

    .venv/bin/python bench/activity_cost.py [--calls 300] [--repeat 3]

Runs `--calls` sequential calls of each kind (after a short warm-up) and prints, per call, the wall
time and the CPU time: this process's (all threads, `time.process_time()`) plus that of the reaped
children (`getrusage(RUSAGE_CHILDREN)`). With `--repeat N` each kind is measured N times
(interleaved) and the best run is printed.

- `plain`: `asyncio.create_subprocess_exec('/bin/sh', '-c', 'true')` and `wait()`.
- `activity`: `run_commands` with `commands: ["true"]` through `temporalio.testing.ActivityEnvironment`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.testing import ActivityEnvironment  # noqa: E402

from activities.api import CommandsRequest  # noqa: E402
from activities.commands import run_commands  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _plain() -> None:
    proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", "true")
    await proc.wait()


def _activity() -> Callable[[], Awaitable[object]]:
    env = ActivityEnvironment()
    request = CommandsRequest(run_id="bench", task_id="t", task_run_id="tr", commands=["true"])
    return lambda: env.run(run_commands, request)


async def _measure(call: Callable[[], Awaitable[object]], calls: int) -> tuple[float, float, float]:
    """(wall, own CPU, children CPU) per call, in milliseconds."""
    for _ in range(min(20, calls)):
        await call()
    wall, own, children = time.perf_counter(), time.process_time(), _children_cpu()
    for _ in range(calls):
        await call()
    wall, own, children = (time.perf_counter() - wall, time.process_time() - own, _children_cpu() - children)
    return wall * 1e3 / calls, own * 1e3 / calls, children * 1e3 / calls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the activity logs each output line; `true` prints none anyway
    kinds = {"plain": _plain, "activity": _activity()}
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(args.repeat):
        for name, call in kinds.items():
            result = await _measure(call, args.calls)
            if name not in best or result[0] < best[name][0]:
                best[name] = result
    print(f"{args.calls} sequential calls each; per call (best of {args.repeat}):")
    print(f"{'kind':<10}{'wall ms':>10}{'CPU ms':>10}{'(own':>10}{'+ children)':>13}")
    for name, (wall, own, children) in best.items():
        print(f"{name:<10}{wall:>10.2f}{own + children:>10.2f}{own:>10.2f}{children:>13.2f}")


if __name__ == "__main__":
    asyncio.run(main())
