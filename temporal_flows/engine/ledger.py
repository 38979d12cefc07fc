"""The ledger of task runs (SPEC §6): Kestra's counting, states, and the run's final state.

Workflow state: the interpreter writes it, the progress query, `tflow status` and `--json` read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from temporal_flows.model.runs import State, TaskRun, timestamp


class Ledger:
    """Task runs in creation order; opened when a task starts, closed with its final state."""

    def __init__(self, now: Callable[[], datetime], new_id: Callable[[], str]):
        self._now = now
        self._new_id = new_id
        self.task_runs: list[TaskRun] = []
        self.bytes = 0
        """Size of the closed task runs as JSON: what recording the ledger will add to the history."""

    def open(self, task_id: str, task_type: str, parent: TaskRun | None, value: Any = None, iteration: int | None = None) -> TaskRun:
        task_run = TaskRun(
            id=self._new_id(),
            task_id=task_id,
            type=task_type,
            parent_id=parent.id if parent else None,
            value=value,
            iteration=iteration,
            state=State.RUNNING,
            attempts=1,
            started_at=timestamp(self._now()),
        )
        self.task_runs.append(task_run)
        return task_run

    @staticmethod
    def new_attempt(task_run: TaskRun) -> None:
        """The task run is tried again (its retry allowed it): one more attempt, same task run."""
        task_run.attempts += 1
        task_run.state = State.RUNNING

    def close(
        self,
        task_run: TaskRun,
        state: State,
        outputs: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        task_run.state = state
        task_run.ended_at = timestamp(self._now())
        task_run.outputs = outputs or {}
        task_run.error = error
        task_run.metrics = metrics or []
        self.bytes += len(json.dumps(task_run.to_dict(), separators=(",", ":"), default=str))

    def to_list(self) -> list[dict[str, Any]]:
        return [task_run.to_dict() for task_run in self.task_runs]

    def page(self, offset: int, max_bytes: int) -> LedgerPage:
        """Task runs from `offset` in creation order, as many as fit in `max_bytes` of JSON (at
        least one, so a page always moves on)."""
        offset = max(0, offset)
        task_runs: list[dict[str, Any]] = []
        size = 0
        for task_run in self.task_runs[offset:]:
            entry = task_run.to_dict()
            entry_size = len(json.dumps(entry, default=str))
            if task_runs and size + entry_size > max_bytes:
                break
            task_runs.append(entry)
            size += entry_size
        end = offset + len(task_runs)
        return LedgerPage(offset, task_runs, len(self.task_runs), end if end < len(self.task_runs) else None, size)

    def pages(self, max_bytes: int) -> list[LedgerPage]:
        """The whole ledger cut into pages of at most `max_bytes` each."""
        pages = [self.page(0, max_bytes)]
        while pages[-1].next_offset is not None:
            pages.append(self.page(pages[-1].next_offset, max_bytes))
        return pages


@dataclass
class LedgerPage:
    """A slice of the ledger: what the `task_runs` query answers and what a finished run keeps in
    its history, so no payload grows with the flow."""

    offset: int
    task_runs: list[dict[str, Any]]
    total: int
    next_offset: int | None = None
    size: int = 0
    """Bytes of its task runs as JSON (not part of the page's payload)."""

    def to_dict(self) -> dict[str, Any]:
        """The page as a payload: `asdict` without its deep copy of every entry (the entries are
        fresh plain dicts, serialized at once)."""
        return {"offset": self.offset, "task_runs": self.task_runs, "total": self.total,
                "next_offset": self.next_offset}
