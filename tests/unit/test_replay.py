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
    # v5 (issue 14): every flow again, with the child runs of subflows, the workflow-side bounds
    # (bounds) and a stored value given to a subflow as an input (subflow_refs).
    third = first | {"engine", "strategies", "foreach", "retry", "errors_finally"}
    fifth = third | {"pause", "subflow", "storage", "steps", "bounds", "subflow_refs"}
    assert {path.stem for path in HISTORIES} >= (
        first | {f"{name}.v2" for name in first} | {"engine.v2"} | {f"{name}.v3" for name in third}
        | {f"{name}.v5" for name in fifth}
    )


CHILD_STARTED = "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED"


def generation(history_file: Path) -> int:
    """The generation a history was recorded in: `<flow>.v<n>[.child-<k>].json`, 1 without a label."""
    parts = history_file.stem.split(".")
    return int(parts[1][1:]) if len(parts) > 1 and parts[1][:1] == "v" and parts[1][1:].isdigit() else 1


def children_started(history_file: Path) -> int:
    return sum(1 for event in json.loads(history_file.read_text())["events"] if event["eventType"] == CHILD_STARTED)


def test_child_runs_were_recorded_beside_their_parent():
    # From v5 on, each child run (subflow) a recorded run started has its own history beside the
    # parent's, replayed like any other: a change to what a child does is caught too.
    parents = [path for path in HISTORIES if ".child-" not in path.stem and generation(path) >= 5]
    calling = {path.stem: children_started(path) for path in parents if children_started(path)}
    assert calling, "the v5 generation holds a run that starts child runs (subflow)"
    for stem, count in calling.items():
        recorded = sorted(path.stem for path in HISTORIES if path.stem.startswith(f"{stem}.child-"))
        assert recorded == sorted(f"{stem}.child-{index}" for index in range(1, count + 1)), stem


@pytest.mark.parametrize("history_file", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(history_file: Path):
    history = WorkflowHistory.from_json(f"replay-{history_file.stem}", json.loads(history_file.read_text()))
    replayer = Replayer(workflows=[FlowWorkflow], workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
