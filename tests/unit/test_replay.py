"""Recorded histories replay green with the current interpreter (SPEC §7): a change that would
break runs in flight fails here. Re-record with `make record-histories` only for an intended,
`workflow.patched`-guarded change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client.worker import workflow_runner
from temporal_flows.engine.workflow import FlowWorkflow

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


def test_histories_were_recorded():
    # The first generation (no label), the one recorded after the engine work of issue 5 (v2), and
    # the one after the task-type registry of issue 6 (v3: every strategy with handlers, a for-each,
    # retries of each type, errors and finally).
    first = {"parallel", "sequential", "fail_fast", "cancelled"}
    third = first | {"engine", "strategies", "foreach", "retry", "errors_finally"}
    assert {path.stem for path in HISTORIES} >= (
        first | {f"{name}.v2" for name in first} | {"engine.v2"} | {f"{name}.v3" for name in third}
    )


@pytest.mark.parametrize("history_file", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(history_file: Path):
    history = WorkflowHistory.from_json(f"replay-{history_file.stem}", json.loads(history_file.read_text()))
    replayer = Replayer(workflows=[FlowWorkflow], workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
