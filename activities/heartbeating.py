"""Heartbeats while an activity waits on something that does not heartbeat itself (a request, a
thread copying files), so a cancellation reaches it and Temporal does not take the worker for dead."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from temporalio import activity

HEARTBEAT_EVERY = 1.0
"""Seconds between heartbeats; the SDK throttles what it actually sends (it learns of a
cancellation on a heartbeat's answer)."""


@contextlib.asynccontextmanager
async def heartbeating(every: float = HEARTBEAT_EVERY) -> AsyncIterator[None]:
    """Heartbeat every `every` seconds (the first at once) for as long as the block runs."""
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
