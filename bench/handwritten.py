"""The hand-written Temporal baseline: what a user would write by hand for the bench's shapes.

One activity that runs `/bin/sh -c true` (its command is a parameter), and three workflows: a
windowed fan-out (at most `window` in flight, the next starts when one finishes), a fan-out of all
at once (gather), and a chain (sequential awaits).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

ACTIVITY_TIMEOUT = timedelta(hours=1)


@activity.defn(name="bench.shell")
async def shell(command: str) -> int:
    proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", command)
    rc = await proc.wait()
    if rc != 0:
        raise ApplicationError(f"command failed with exit code {rc}", non_retryable=True)
    return rc


def _start(command: str) -> "asyncio.Task[int]":
    return workflow.start_activity(shell, command, start_to_close_timeout=ACTIVITY_TIMEOUT)


@workflow.defn(name="BenchFanoutWindow")
class FanoutWindow:
    @workflow.run
    async def run(self, count: int, window: int, command: str = "true") -> int:
        pending: list[asyncio.Task[int]] = []
        started = done = 0
        while done < count:
            while started < count and len(pending) < window:
                pending.append(_start(command))
                started += 1
            finished, pending = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in finished:
                future.result()  # a failed activity fails the workflow
            done += len(finished)
        return done


@workflow.defn(name="BenchFanoutAll")
class FanoutAll:
    @workflow.run
    async def run(self, count: int, command: str = "true") -> int:
        results = await asyncio.gather(*(_start(command) for _ in range(count)))
        return len(results)


@workflow.defn(name="BenchChain")
class Chain:
    @workflow.run
    async def run(self, count: int, command: str = "true") -> int:
        for _ in range(count):
            await _start(command)
        return count


WORKFLOWS = [FanoutWindow, FanoutAll, Chain]
ACTIVITIES = [shell]
