"""Without a server: the labels task's checks when a flow loads (each form, each bad label at its line),
and `tflow list`'s filters as Temporal list filters: `--since` forms, the flow namespace as a
namespace (not a text prefix), label quoting, and which `--state`s need the run's own state read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from client.run_list import RUN_STATES, RunFilter, _needs_refining, since_time, visibility_query
from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError
from temporal_flows.tasks.pure.labels import label_problem, labels_problem

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def flow_with(labels_yaml: str) -> str:
    return f"id: f\nnamespace: t\ntasks:\n  - id: set\n    type: io.kestra.plugin.core.execution.Labels\n    labels: {labels_yaml}\n"


@pytest.mark.parametrize("labels_yaml", [
    "{stage: prod, count: 3, on: true}",
    "[{key: stage, value: prod}, {key: '{{ inputs.k }}', value: '{{ inputs.v }}'}]",
    "'{{ inputs.json }}'",
    "{'{{ inputs.k }}': v, stage: '{{ inputs.v }}'}",
])
def test_good_labels_load(labels_yaml: str):
    flow = load_flow_text(flow_with(labels_yaml), "flow.yaml").flow
    assert flow.tasks[0].type == "labels"


@pytest.mark.parametrize("labels_yaml, message", [
    ("{system.id: x}", "label `system.id`: names starting with `system.` are reserved"),
    ("{a=b: x}", "label `a=b`: a name cannot hold `=`"),
    ("{stage: [a]}", "label `stage` must be text, got a list"),
    ("{stage: null}", "label `stage` must be text, got null"),
    ("{'{{ inputs.k }}': {a: 1}}", "label `{{ inputs.k }}` must be text, got a mapping"),
    ("[{key: a}]", "entry 1 must be a `{key, value}` mapping"),
    ("[{key: '', value: x}]", "label name '' must be non-empty text"),
    ("5", "expected a mapping of name → text, a list of `{key, value}`, or text that renders to a JSON mapping"),
])
def test_bad_labels_are_problems_at_their_line(labels_yaml: str, message: str):
    with pytest.raises(FlowError) as error:
        load_flow_text(flow_with(labels_yaml), "flow.yaml")
    assert "flow.yaml:6:" in str(error.value) and message in str(error.value), str(error.value)


def test_label_problem_reads_scalars_as_text():
    assert label_problem("n", 3) is None and label_problem(7, True) is None
    assert label_problem("n", 1.5) is None
    assert labels_problem("{{ anything }}") is None  # rendered when the task runs
    assert label_problem({"a": 1}, "x") == "label name a mapping must be non-empty text"


def test_since_takes_durations_and_iso_times():
    assert since_time("1h", NOW) == NOW - timedelta(hours=1)
    assert since_time("7d", NOW) == NOW - timedelta(days=7)
    assert since_time("PT30M", NOW) == NOW - timedelta(minutes=30)
    assert since_time("2024-04-30T08:00:00Z", NOW) == datetime(2024, 4, 30, 8, tzinfo=timezone.utc)
    assert since_time("2024-04-30T10:00:00+02:00", NOW) == datetime(2024, 4, 30, 8, tzinfo=timezone.utc)
    local = since_time("2024-04-30", NOW)
    assert local.tzinfo is not None and local == datetime(2024, 4, 30).astimezone()
    with pytest.raises(ValueError, match="expected a duration like `1h` or `7d`, or an ISO date-time"):
        since_time("yesterday", NOW)


def test_visibility_query_holds_each_filter():
    query = visibility_query(RunFilter(
        flow_id="f", namespace="company.team.", labels={"it's": "a\\b"}, since=datetime(2024, 4, 30, 10, tzinfo=timezone(timedelta(hours=2))),
        states=frozenset({"FAILED"}),
    ))
    assert query == (
        "WorkflowType = 'FlowWorkflow' AND TflowFlowId = 'f' "
        "AND (TflowNamespace = 'company.team' OR TflowNamespace STARTS_WITH 'company.team.') "
        "AND TflowLabels = 'it\\'s=a\\\\b' AND StartTime >= '2024-04-30T08:00:00+00:00' "
        "AND (ExecutionStatus = 'Failed' OR ExecutionStatus = 'Terminated' OR ExecutionStatus = 'TimedOut')"
    )
    assert visibility_query(RunFilter()) == "WorkflowType = 'FlowWorkflow'"
    assert visibility_query(RunFilter(states=frozenset({"PAUSED"}))).endswith("AND (ExecutionStatus = 'Running')")
    assert visibility_query(RunFilter(states=frozenset({"CANCELLED"}))).endswith(
        "AND (ExecutionStatus = 'Completed' OR ExecutionStatus = 'Canceled')")  # a cancelled task ends its run CANCELLED


@pytest.mark.parametrize("states, refined", [
    ({"FAILED"}, False),
    ({"FAILED", "CANCELLED"}, True),
    ({"SUCCESS", "WARNING", "CANCELLED"}, False),
    ({"SUCCESS"}, True),
    ({"RUNNING", "PAUSED", "QUEUED"}, False),
    ({"PAUSED"}, True),
    (set(RUN_STATES), False),
])
def test_states_temporal_cannot_tell_are_refined(states: set[str], refined: bool):
    assert _needs_refining(frozenset(states)) is refined
