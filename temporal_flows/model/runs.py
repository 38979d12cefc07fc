"""The records of a run (SPEC §6): the states a task run or a run can be in, Kestra's rule for
the worst of them, and one task run as the ledger keeps it. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class State(str, Enum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    @property
    def is_terminal(self) -> bool:
        return self not in (State.CREATED, State.RUNNING, State.PAUSED)

    @property
    def succeeded(self) -> bool:
        """Did the task do its job? (A WARNING did; a SKIPPED task stands in nobody's way.)"""
        return self in (State.SUCCESS, State.WARNING, State.SKIPPED)


_SEVERITY = {State.SUCCESS: 0, State.SKIPPED: 0, State.WARNING: 1, State.FAILED: 2, State.CANCELLED: 3}


def worst(states: list[State]) -> State:
    """The run's rule: CANCELLED > FAILED > WARNING > SUCCESS (SKIPPED counts as SUCCESS)."""
    result = State.SUCCESS
    for state in states:
        if _SEVERITY.get(state, 0) > _SEVERITY[result]:
            result = state
    return result


def timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and `Z`, as Kestra prints dates (formatted from the fields:
    three per task run, and strftime is several times slower inside the workflow sandbox)."""
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


@dataclass
class TaskRun:
    id: str
    task_id: str
    type: str
    parent_id: str | None = None
    value: Any = None
    iteration: int | None = None
    state: State = State.CREATED
    attempts: int = 0
    started_at: str | None = None
    ended_at: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "type": self.type,
            "parent_id": self.parent_id,
            "value": self.value,
            "iteration": self.iteration,
            "state": self.state.value,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outputs": self.outputs,
            "metrics": self.metrics,
            "error": self.error,
        }


class PauseEnd(str, Enum):
    """How a pause stopped waiting."""

    RESUMED = "resumed"
    """`tflow resume` (the workflow's `resume` update)."""
    ELAPSED = "elapsed"
    """Its `pauseDuration` (`delay`) went by; its `behavior` says what follows."""
    TIMED_OUT = "timed_out"
    """Its `timeout` went by without a resume: the task fails."""
