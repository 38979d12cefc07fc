"""`client.replay` without a server: recorded histories (tests/histories) replay OK through the same
replayer `tflow replay` builds, and a copy with one event edited or removed diverges at exactly
that event, named with its type and Temporal's reason; a workflow task held past the deadlock bound
(load) is replayed again; history files are read or refused with a message naming the file."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from client import replay
from client.replay import HistoryFileError, ReplayOutcome, ReplaySession, flow_replayer, read_history_file, recorded_run_id, replay_history
from client.codec import environment_data_converter

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
SCHEDULED = "activityTaskScheduledEventAttributes"
CHILD_INITIATED = "startChildWorkflowExecutionInitiatedEventAttributes"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((HISTORIES / name).read_text())


def event(document: dict[str, Any], event_id: int) -> dict[str, Any]:
    found = [item for item in document["events"] if int(item["eventId"]) == event_id]
    assert len(found) == 1
    return found[0]


def edited(name: str, edit: Callable[[dict[str, Any]], None], tmp_path: Path) -> Path:
    document = copy.deepcopy(recorded(name))
    edit(document)
    target = tmp_path / f"edited-{name}"
    target.write_text(json.dumps(document))
    return target


async def replayed(path: Path) -> ReplayOutcome:
    async with ReplaySession(flow_replayer(environment_data_converter({}))) as session:
        return await replay_history(session, read_history_file(path), source=str(path))


async def test_a_recorded_run_with_child_runs_replays_under_the_run_id_it_was_recorded_with():
    outcome = await replayed(HISTORIES / "subflow.v4.json")
    assert outcome.ok, outcome
    assert outcome.run_id == "replay-subflow.v4"  # told from its children's ids; replay depends on it
    assert outcome.events == len(recorded("subflow.v4.json")["events"]) == 71


async def test_a_renamed_activity_type_diverges_at_that_event(tmp_path: Path):
    def rename(document: dict[str, Any]) -> None:
        scheduled = event(document, 20)[SCHEDULED]
        assert scheduled["activityType"]["name"] == "tflow.commands"  # the second batch of the parallel group
        scheduled["activityType"]["name"] = "tflow.renamed"

    outcome = await replayed(edited("parallel.v4.json", rename, tmp_path))
    assert not outcome.ok
    assert (outcome.event_id, outcome.event_type) == (20, "ActivityTaskScheduled")
    assert "Nondeterminism" in outcome.error and "'tflow.renamed'" in outcome.error and "'tflow.commands'" in outcome.error
    assert "Failure {" not in outcome.error, "the SDK core's wrapping is left out"


async def test_a_removed_scheduled_activity_diverges_where_the_code_scheduled_one_more(tmp_path: Path):
    def remove_and_renumber(document: dict[str, Any]) -> None:
        assert SCHEDULED in event(document, 8)
        document["events"].pop(7)
        for number, item in enumerate(document["events"], start=1):
            item["eventId"] = str(number)

    outcome = await replayed(edited("parallel.v4.json", remove_and_renumber, tmp_path))
    assert (outcome.event_id, outcome.event_type) == (8, "ActivityTaskScheduled")
    assert "Activity id of scheduled event '3' does not match activity id of activity command '2'" in outcome.error


async def test_a_hole_in_the_history_diverges_at_the_event_after_it(tmp_path: Path):
    outcome = await replayed(edited("parallel.v4.json", lambda document: document["events"].pop(7), tmp_path))
    assert (outcome.event_id, outcome.events) == (9, 38)
    assert "out of order" in outcome.error


async def test_a_child_run_started_under_another_id_diverges_at_its_start(tmp_path: Path):
    def other_child(document: dict[str, Any]) -> None:  # the third child start: the for-each's first item
        initiated = event(document, 25)[CHILD_INITIATED]
        initiated["workflowId"] = initiated["workflowId"] + "-x"

    outcome = await replayed(edited("subflow.v4.json", other_child, tmp_path))
    assert (outcome.event_id, outcome.event_type) == (25, "StartChildWorkflowExecutionInitiated")
    assert "Child workflow id" in outcome.error


def test_the_recorded_run_id_comes_from_a_child_id_and_is_none_without_children():
    subflow = WorkflowHistory.from_json("", recorded("subflow.v4.json"))
    assert recorded_run_id(subflow.events) == "replay-subflow.v4"
    assert recorded_run_id(WorkflowHistory.from_json("", recorded("parallel.v4.json")).events) is None
    assert read_history_file(HISTORIES / "parallel.v4.json").workflow_id == "parallel.v4"  # the file's name


@pytest.mark.parametrize("content, expected", [
    ("not json", "not JSON"),
    ('{"events": []}', "non-empty `events` list"),
    ('[1, 2]', "non-empty `events` list"),
    ('{"events": [{"eventId": "x", "eventType": "EVENT_TYPE_TIMER_FIRED"}]}', "not a workflow history"),
    ('{"events": [{"eventId": "1", "eventType": "EVENT_TYPE_TIMER_FIRED", "timerFiredEventAttributes": {}}]}',
     "its first event is TimerFired, not WorkflowExecutionStarted"),
])
def test_a_bad_history_file_is_refused_naming_the_file(tmp_path: Path, content: str, expected: str):
    path = tmp_path / "history.json"
    path.write_text(content)
    with pytest.raises(HistoryFileError) as refused:
        read_history_file(path)
    assert str(refused.value).startswith(f"{path}: ") and expected in str(refused.value)


def test_a_history_file_past_the_bound_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(recorded("parallel.v4.json")))
    monkeypatch.setattr(replay, "MAX_HISTORY_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(HistoryFileError, match="more than a history can be"):
        read_history_file(path)
    with pytest.raises(HistoryFileError, match="cannot read it"):
        read_history_file(tmp_path / "missing.json")


def test_the_reason_is_the_core_message_unwrapped():
    wrapped = RuntimeError('Workflow activation completion failed: Failure { failure: Some(Failure { message: '
                           '"[TMPRL1100] Nondeterminism error: type \\"a\\" is not \'b\'", source: "", stack_trace: "" }) }')
    assert replay.failure_reason(wrapped) == "[TMPRL1100] Nondeterminism error: type \"a\" is not 'b'"
    assert replay.failure_reason(ValueError("plain")) == "plain"


BUSY_FIRST_CALLS = {"count": 0}


@workflow.defn(name="FlowWorkflow")
class BusyOnce:
    """Holds its first workflow task past the SDK's 2 s deadlock bound (a busy machine), then fails plainly."""

    @workflow.run
    async def run(self, request: dict[str, Any]) -> None:
        BUSY_FIRST_CALLS["count"] += 1
        if BUSY_FIRST_CALLS["count"] == 1:
            until = time.monotonic() + 2.5
            while time.monotonic() < until:
                pass
        raise RuntimeError("the second attempt's own failure")


async def test_a_workflow_task_held_past_the_deadlock_bound_is_replayed_again_not_reported():
    history = WorkflowHistory.from_json("replay-parallel.v4", recorded("parallel.v4.json"))
    replayer = Replayer(workflows=[BusyOnce], workflow_runner=UnsandboxedWorkflowRunner())
    async with ReplaySession(replayer) as session:
        failure = await session.failure(history)
    assert BUSY_FIRST_CALLS["count"] == 2
    assert "[TMPRL1101]" not in str(failure) and "the second attempt's own failure" in str(failure)
