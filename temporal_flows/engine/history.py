"""The run's history kept under Temporal's limits (50 MiB and 51,200 events by default; past them
the server terminates the run): before each task run starts, the history so far, what the workflow
sent since the server last measured it and the ledger it will record at the end must leave room.

The server measures the history at the start of each workflow task (`workflow.info()`, the same on
replay); what this workflow task adds is counted here as it is sent.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

HISTORY_SIZE_LIMIT_BYTES = 50 * 1024 * 1024
"""Temporal's default `limit.historySize.error`."""
HISTORY_EVENTS_LIMIT = 51_200
"""Temporal's default `limit.historyCount.error`."""
HISTORY_SIZE_BUDGET_BYTES = 40 * 1024 * 1024
"""No task run starts past this: the rest is for results of activities still running (at most
1 MiB each), the run's end and its recorded ledger."""
HISTORY_EVENTS_BUDGET = 44_000
"""No task run starts past this many events: an activity still running adds about five more
(its start, end and the workflow task that reads it), a recorded ledger page about four."""
SEND_LIMIT_BYTES = 2 * 1024 * 1024
"""Most bytes of requests one workflow task sends: the server takes a workflow task's commands in
one gRPC message of at most 4 MiB (past it the workflow task fails again and again)."""
LEDGER_RECORD_MARGIN_BYTES = 2 * 1024 * 1024
"""Room kept under the size limit when the ledger is recorded at the end."""
HISTORY_TOO_LARGE_ERROR = "HistoryTooLarge"
PATCH_HISTORY_BUDGET = "history-budget"
"""Before it, a run grew its history until the server terminated it."""
PATCH_SPREAD_REQUESTS = "spread-requests"
"""Before it, every request ready at once went out in one workflow task, however big together."""
ADVICE = ("split the flow into subflows (each run has a history of its own), or keep big values in files "
          "(`outputFiles`)")


class HistoryBudget:
    """What the run has used of its history; `exceeded` says why no more task runs may start."""

    def __init__(self) -> None:
        self._measured: tuple[int, int] = (-1, -1)
        self._sent_bytes = 0
        self._sent_events = 0
        self._next_workflow_task: asyncio.Future[None] | None = None

    def _now(self) -> tuple[int, int]:
        """(bytes, events) of the history, with what this workflow task sent so far."""
        info = workflow.info()
        measured = (info.get_current_history_size(), info.get_current_history_length())
        if measured != self._measured:  # a new workflow task: the server counted what was sent
            self._measured, self._sent_bytes, self._sent_events = measured, 0, 0
        return measured[0] + self._sent_bytes, measured[1] + self._sent_events

    def spend(self, size: int) -> None:
        """A request of `size` bytes sent in this workflow task (an activity, a child run)."""
        self._now()
        self._sent_bytes += size
        self._sent_events += 1

    async def make_room(self, size: int) -> None:
        """Wait until this workflow task can send `size` more bytes (`SEND_LIMIT_BYTES`; one
        request always goes), then count them. Waiting is one durable 1 ms timer shared by every
        request that waits: when it fires, a new workflow task sends the next share."""
        while True:
            self._now()
            if self._sent_bytes == 0 or self._sent_bytes + size <= SEND_LIMIT_BYTES or not workflow.patched(
                PATCH_SPREAD_REQUESTS
            ):
                self.spend(size)
                return
            if self._next_workflow_task is None or self._next_workflow_task.done():
                self._next_workflow_task = asyncio.ensure_future(workflow.sleep(0.001, summary="spread requests"))
            await asyncio.shield(self._next_workflow_task)

    def exceeded(self, ledger_bytes: int) -> dict[str, str] | None:
        """The error a task run fails with when starting it could take the run past Temporal's
        history limits (the ledger of `ledger_bytes` is still to be recorded), else None."""
        size, events = self._now()
        if size + ledger_bytes <= HISTORY_SIZE_BUDGET_BYTES and events <= HISTORY_EVENTS_BUDGET:
            return None
        if not workflow.patched(PATCH_HISTORY_BUDGET):
            return None
        message = (f"the run's history is {_mib(size)} in {events:,} events (its ledger another {_mib(ledger_bytes)}); "
                   f"no task run starts past {_mib(HISTORY_SIZE_BUDGET_BYTES)} or {HISTORY_EVENTS_BUDGET:,} events, "
                   f"below Temporal's limits ({_mib(HISTORY_SIZE_LIMIT_BYTES)}, {HISTORY_EVENTS_LIMIT:,} events) "
                   f"where the server would terminate the run; {ADVICE}")
        return {"type": HISTORY_TOO_LARGE_ERROR, "message": message}

    def fits(self, size: int) -> bool:
        """Whether `size` more bytes (the recorded ledger) leave the history under its limit."""
        return self._now()[0] + size <= HISTORY_SIZE_LIMIT_BYTES - LEDGER_RECORD_MARGIN_BYTES


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
