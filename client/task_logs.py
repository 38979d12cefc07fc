"""Task runs' logs, read from the run's history: each `commands`/`script` activity's result (or its
failure's details) carries its bounded log (`CommandsResult.log_lines`), so the logs are kept
beside the ledger without growing the workflow's state, and read the same way live or finished.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter

from activities.api import COMMANDS_ACTIVITY, SCRIPT_ACTIVITY

LOGGED_ACTIVITIES = frozenset({COMMANDS_ACTIVITY, SCRIPT_ACTIVITY})


@dataclass
class AttemptLog:
    """The log of one attempt of a task run (one activity execution)."""

    task_id: str
    task_run_id: str
    label: str
    """As the progress view names it: `task id [value]` inside a for-each."""
    attempt: int
    """1 for a task run's first attempt, counted per task run."""
    state: str
    """SUCCESS, FAILED, or CANCELLED / TIMED_OUT (their log is not kept)."""
    lines: list[dict[str, Any]] = field(default_factory=list)
    """{timestamp, level, message}, in order."""


class _LogCollector:
    """Turns history events into attempt logs, as each attempt's activity closes."""

    def __init__(self, converter: DataConverter) -> None:
        self._converter = converter
        self._scheduled: dict[int, tuple[str, str, str]] = {}
        self._attempts: dict[str, int] = {}

    async def feed(self, event: HistoryEvent) -> AttemptLog | None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            await self._schedule(event)
            return None
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attributes = event.activity_task_completed_event_attributes
            return await self._close(attributes.scheduled_event_id, "SUCCESS", attributes.result.payloads)
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            attributes = event.activity_task_failed_event_attributes
            details = attributes.failure.application_failure_info.details.payloads
            return await self._close(attributes.scheduled_event_id, "FAILED", details)
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            return await self._close(event.activity_task_canceled_event_attributes.scheduled_event_id, "CANCELLED", [])
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            return await self._close(event.activity_task_timed_out_event_attributes.scheduled_event_id, "TIMED_OUT", [])
        return None

    async def _schedule(self, event: HistoryEvent) -> None:
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name not in LOGGED_ACTIVITIES or not attributes.input.payloads:
            return
        [request] = await self._converter.decode(attributes.input.payloads[:1], [dict])
        label = request.get("task_id", "?")
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
            [label] = await self._converter.decode([event.user_metadata.summary], [str])
        self._scheduled[event.event_id] = (request.get("task_id", "?"), request.get("task_run_id", ""), label)

    async def _close(self, scheduled_id: int, state: str, payloads: Any) -> AttemptLog | None:
        scheduled = self._scheduled.pop(scheduled_id, None)
        if scheduled is None:
            return None
        task_id, task_run_id, label = scheduled
        attempt = self._attempts[task_run_id] = self._attempts.get(task_run_id, 0) + 1
        lines: list[dict[str, Any]] = []
        if payloads:
            try:
                [data] = await self._converter.decode(list(payloads)[:1], [dict])
            except Exception:  # noqa: BLE001 - a result of another shape has no log to show
                data = {}
            lines = list(data.get("log_lines") or []) if isinstance(data, dict) else []
        return AttemptLog(task_id, task_run_id, label, attempt, state, lines)


async def follow_task_logs(handle: WorkflowHandle[Any, Any], *, wait: bool = True) -> AsyncIterator[AttemptLog]:
    """Each attempt's log as its activity closes; with `wait`, until the run ends."""
    collector = _LogCollector(handle._client.data_converter)  # noqa: SLF001 - the handle's own converter
    async for event in handle.fetch_history_events(wait_new_event=wait):
        attempt = await collector.feed(event)
        if attempt is not None:
            yield attempt


async def read_task_logs(handle: WorkflowHandle[Any, Any], task_id: str | None = None) -> list[AttemptLog]:
    """Every closed attempt's log so far, in the order they closed; only `task_id`'s if given."""
    return [attempt async for attempt in follow_task_logs(handle, wait=False)
            if task_id is None or attempt.task_id == task_id]
