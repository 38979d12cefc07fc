"""A task's `retry` (SPEC §3.3): which attempts may follow a failure, and how long to wait first.

The interpreter runs each attempt itself and waits between attempts on a durable Temporal timer,
because Kestra renders a task's properties again for every attempt (`taskrun.attemptsCount`) and
retries pure tasks (Fail, Log) that never become activities. Temporal's activity retry policy is
kept for what the task did not decide: a lost worker, re-dispatched without counting an attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

RETRY_TYPES = ("constant", "exponential", "random")
BEHAVIORS = ("RETRY_FAILED_TASK",)
"""Kestra's flow-level `behavior`s that keep the same execution (the only kind there is here)."""


@dataclass(frozen=True)
class RetryPolicy:
    """A normalized `retry`: seconds for every duration, `max_attempt` counting the first one."""

    type: str = "constant"
    max_attempt: int | None = None
    max_duration: float | None = None
    interval: float | None = None
    max_interval: float | None = None
    min_interval: float | None = None
    delay_factor: float | None = None
    warning_on_retry: bool = False

    @staticmethod
    def from_dict(data: dict[str, Any]) -> RetryPolicy:
        known = {key: value for key, value in data.items() if key in RetryPolicy.__dataclass_fields__}
        return RetryPolicy(**known)

    def allows_another(self, attempts_done: int, elapsed_s: float, delay_s: float) -> bool:
        """May attempt `attempts_done + 1` start, `delay_s` from now, `elapsed_s` after the first?"""
        if self.max_attempt is not None and attempts_done >= self.max_attempt:
            return False
        if self.max_duration is not None and elapsed_s + delay_s > self.max_duration:
            return False
        return self.max_attempt is not None or self.max_duration is not None

    def delay(self, attempts_done: int, random: Callable[[], float]) -> float:
        """Seconds to wait before attempt `attempts_done + 1`; `random` (in [0, 1)) is the
        workflow's deterministic random source, drawn from only by type `random`."""
        if self.type == "exponential":
            base = self.interval or 1.0
            delay = base * (self.delay_factor or 2.0) ** (attempts_done - 1)
            return min(delay, self.max_interval) if self.max_interval else delay
        if self.type == "random":
            low = self.min_interval or 0.0
            high = self.max_interval if self.max_interval is not None else max(low, self.interval or low)
            return low + (high - low) * random()
        return self.interval or 0.0


RETRY_PROPERTIES: dict[str, str] = {
    "type": "choice",
    "max_attempt": "attempts",
    "max_duration": "duration",
    "interval": "duration",
    "max_interval": "duration",
    "min_interval": "duration",
    "delay_factor": "number",
    "warning_on_retry": "boolean",
    "behavior": "behavior",
}
"""The keys a `retry` takes (snake_case) and what each must be; checked by the task-list dialect."""
