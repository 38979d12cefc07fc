"""Task runs' logs, read from the run's history: each `commands`/`script` activity's result (or its
failure's details) carries its bounded log (`CommandsResult.log_lines`), so the logs are kept
beside the ledger without growing the workflow's state, and read the same way live or finished.

While an attempt runs, its heartbeat details carry the last lines of its log with their numbers
(`TaskLog.live_window`); `follow_task_logs(live=True)` reads them from the run's pending activities
about every LIVE_POLL seconds and, once the attempt closes, prints only the final log's lines it has
not shown. A `log` task's lines are in its task run's outputs (`logs`), read from the ledger.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter

from activities.api import COMMANDS_ACTIVITY, SCRIPT_ACTIVITY
from temporal_flows.tasks.pure.log import TYPE as LOG_TYPE

LOGGED_ACTIVITIES = frozenset({COMMANDS_ACTIVITY, SCRIPT_ACTIVITY})
LIVE_POLL = 1.0
"""Seconds between reads of running attempts' logs (the worker heartbeats about every second)."""
_LEFT_OUT = re.compile(r"^… (\d+) log lines left out \(")
LOG_TASK_TYPES = frozenset({LOG_TYPE.name, *LOG_TYPE.aliases})


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
    live: bool = False
    """Lines of a still running attempt (state RUNNING): more may follow, then its closed log with
    only the lines not shown yet."""
    shown_live: int = 0
    """For a closed attempt followed live: how many lines of its final log were shown before (and
    are not in `lines`)."""


class _LogCollector:
    """Turns history events into attempt logs, as each attempt's activity closes."""

    def __init__(self, converter: DataConverter) -> None:
        self._converter = converter
        self._scheduled: dict[int, tuple[str, str, str]] = {}
        self._attempts: dict[str, int] = {}
        self._activity_ids: dict[str, int] = {}
        self._shown: dict[int, int] = {}
        """Scheduled event id → how many of its attempt's log lines were shown live."""

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
        self._activity_ids[attributes.activity_id] = event.event_id

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
        shown = self._shown.pop(scheduled_id, 0)
        rest = _not_shown(lines, shown) if shown else lines
        return AttemptLog(task_id, task_run_id, label, attempt, state, rest, shown_live=len(lines) - len(rest))

    async def live(self, pending: Any) -> AttemptLog | None:
        """A running attempt's lines not shown yet, from its last heartbeat's details."""
        scheduled_id = self._activity_ids.get(pending.activity_id)
        scheduled = self._scheduled.get(scheduled_id) if scheduled_id is not None else None
        if scheduled is None or not pending.heartbeat_details.payloads:
            return None
        try:
            [window] = await self._converter.decode(list(pending.heartbeat_details.payloads)[:1], [dict])
            first, count, lines = int(window["log_from"]), int(window["log_count"]), list(window["log_lines"])
        except Exception:  # noqa: BLE001 - a heartbeat without a log window shows nothing
            return None
        shown = self._shown.get(scheduled_id, 0)
        if count < shown:  # a new attempt of the same activity (a lost worker's): its log starts again
            shown = 0
        if count <= shown:
            return None
        new = lines[max(0, shown - first):]
        if first > shown:
            new.insert(0, {"timestamp": lines[0]["timestamp"] if lines else "", "level": "WARN",
                           "message": f"… {first - shown} log lines not shown live (see the attempt's final log) …"})
        self._shown[scheduled_id] = count
        task_id, task_run_id, label = scheduled
        return AttemptLog(task_id, task_run_id, label, self._attempts.get(task_run_id, 0) + 1, "RUNNING", new, live=True)


def _not_shown(lines: list[dict[str, Any]], shown: int) -> list[dict[str, Any]]:
    """The final log's lines from number `shown` on: its kept head, the note of the lines left out
    (whose count tells where its tail starts), its tail."""
    for index, line in enumerate(lines):
        match = _LEFT_OUT.match(str(line.get("message", ""))) if line.get("level") == "WARN" else None
        if match:
            tail_from = index + int(match.group(1))
            head, tail = lines[:index], lines[index + 1:]
            kept = head[shown:] + ([line] if shown < tail_from else [])
            return kept + tail[max(0, shown - tail_from):]
    return lines[shown:]


async def follow_task_logs(handle: WorkflowHandle[Any, Any], *, wait: bool = True,
                           live: bool = False) -> AsyncIterator[AttemptLog]:
    """Each attempt's log as its activity closes; with `wait`, until the run ends; with `live` (and
    `wait`) also a running attempt's new lines about every LIVE_POLL seconds."""
    collector = _LogCollector(handle._client.data_converter)  # noqa: SLF001 - the handle's own converter
    if not (wait and live):
        async for event in handle.fetch_history_events(wait_new_event=wait):
            attempt = await collector.feed(event)
            if attempt is not None:
                yield attempt
        return
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    async def read_history() -> None:
        try:
            async for event in handle.fetch_history_events(wait_new_event=True):
                await queue.put(event)
        finally:
            await queue.put(done)

    async def poll() -> None:
        while True:
            await asyncio.sleep(LIVE_POLL)
            try:
                await queue.put((await handle.describe()).raw_description.pending_activities)
            except Exception:  # noqa: BLE001 - a failed read is retried at the next poll
                continue

    reader, poller = asyncio.create_task(read_history()), asyncio.create_task(poll())
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, HistoryEvent):
                found = [await collector.feed(item)]
            else:
                found = [await collector.live(pending) for pending in item]
            for attempt in found:
                if attempt is not None:
                    yield attempt
        await reader  # its error, if the history could not be read
    finally:
        poller.cancel()
        reader.cancel()


async def read_task_logs(handle: WorkflowHandle[Any, Any], task_id: str | None = None, *,
                         running: bool = False) -> list[AttemptLog]:
    """Every closed attempt's log so far, in the order they closed; with `running`, then each
    running attempt's last lines (state RUNNING); only `task_id`'s if given."""
    collector = _LogCollector(handle._client.data_converter)  # noqa: SLF001 - the handle's own converter
    # Running activities first: one that closes meanwhile is then in the history read next.
    pending = (await handle.describe()).raw_description.pending_activities if running else []
    found = [attempt async for event in handle.fetch_history_events() if (attempt := await collector.feed(event))]
    found += [attempt for activity in pending if (attempt := await collector.live(activity))]
    return [attempt for attempt in found if task_id is None or attempt.task_id == task_id]


def log_task_logs(task_runs: list[dict[str, Any]], task_id: str | None = None) -> list[AttemptLog]:
    """The `log` tasks' lines, kept in their task runs' outputs (`logs`); only `task_id`'s if given."""
    found = []
    for run in task_runs:
        lines = (run.get("outputs") or {}).get("logs") if isinstance(run.get("outputs"), dict) else None
        if run.get("type") not in LOG_TASK_TYPES or not isinstance(lines, list) or task_id not in (None, run.get("task_id")):
            continue
        label = run["task_id"] if run.get("value") is None else f"{run['task_id']} [{run['value']}]"
        found.append(AttemptLog(run["task_id"], run.get("id", ""), label, max(1, run.get("attempts") or 1),
                                str(run.get("state", "")), lines))
    return found
