"""FlowWorkflow: the one generic Temporal workflow that interprets a normalized flow.

It wires the interpreter, the scheduler and the ledger, and answers the `snapshot` query with the
run's live state. The flow definition is the workflow input, so a run never sees later edits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError

from temporal_flows.interpreter import Interpreter
from temporal_flows.ledger import Ledger, State, timestamp
from temporal_flows.metadata import WORKFLOW_TYPE
from temporal_flows.model import Flow

SNAPSHOT_QUERY = "snapshot"
FLOW_FAILED_ERROR = "FlowFailed"
"""Error type of a run that ended FAILED; its first detail is the run's result object (SPEC §6)."""


@dataclass
class RunRequest:
    """The workflow input: the normalized flow plus what this run was started with."""

    flow: dict[str, Any]
    flow_hash: str = ""
    max_workers: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


@workflow.defn(name=WORKFLOW_TYPE)
class FlowWorkflow:
    def __init__(self) -> None:
        self._ledger = Ledger(now=workflow.now, new_id=lambda: workflow.uuid4().hex[:16])
        self._flow: Flow | None = None
        self._state = State.RUNNING
        self._error: dict[str, Any] | None = None
        self._ended: datetime | None = None

    @workflow.run
    async def run(self, request: RunRequest) -> dict[str, Any]:
        self._flow = Flow.from_dict(request.flow)
        info = workflow.info()
        interpreter = Interpreter(self._flow, info.workflow_id, info.start_time, request.max_workers, self._ledger)
        try:
            outcome = await interpreter.run_flow()
        except (asyncio.CancelledError, CancelledError):
            self._finish(State.CANCELLED, {"type": "Cancelled", "message": "the run was cancelled", "task_id": None})
            raise
        self._finish(outcome.state, outcome.error)
        result = self.snapshot()
        if outcome.state is State.FAILED:
            message = (outcome.error or {}).get("message", "a task failed")
            task_id = (outcome.error or {}).get("task_id")
            raise ApplicationError(
                f"task `{task_id}` failed: {message}" if task_id else message,
                result,
                type=FLOW_FAILED_ERROR,
                non_retryable=True,
            )
        return result

    def _finish(self, state: State, error: dict[str, Any] | None) -> None:
        self._state = state
        self._error = error
        self._ended = workflow.now()

    @workflow.query(name=SNAPSHOT_QUERY)
    def snapshot(self) -> dict[str, Any]:
        """The run as SPEC §6 describes it; `state` is RUNNING until the run ends."""
        info = workflow.info()
        flow = self._flow
        duration = ((self._ended or workflow.now()) - info.start_time).total_seconds()
        return {
            "run_id": info.workflow_id,
            "flow": {"namespace": flow.namespace if flow else None, "id": flow.id if flow else None},
            "state": self._state.value,
            "started_at": timestamp(info.start_time),
            "ended_at": timestamp(self._ended) if self._ended else None,
            "duration_s": round(duration, 3),
            "outputs": {},
            "error": self._error,
            "ui_url": None,
            "task_runs": self._ledger.to_list(),
        }
