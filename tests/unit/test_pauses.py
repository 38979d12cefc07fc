"""What a resume may wake and why it is refused (`temporal_flows.engine.pauses`), and how `tflow status`
and `tflow run` say what a paused run waits for. The waiting itself runs in the workflow
(tests/integration/test_pause.py); choosing and checking is plain logic, tested here."""

from __future__ import annotations

import pytest

from cli.progress import ProgressPrinter, waiting_lines
from temporal_flows.engine.pauses import PausedTask, Pauses, ResumeRefused
from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError
from temporal_flows.model.runs import TaskRun

FLOW_TASKS = {"first", "gate", "approve", "last"}


def registry(*paused: PausedTask) -> Pauses:
    pauses = Pauses()
    pauses._waiting.extend(paused)  # noqa: SLF001 - what `wait` registers, without a workflow
    return pauses


def paused(task_id: str, run_id: str, value: str | None = None, on_resume: list[dict] | None = None) -> PausedTask:
    return PausedTask(TaskRun(run_id, task_id, "pause", value=value, started_at="2026-01-01T00:00:00.000Z"), on_resume or [])


APPROVE = paused("approve", "r1", on_resume=[{"id": "ok", "type": "BOOLEAN"}, {"id": "note", "type": "STRING", "defaults": "-"}])
GATES = [paused("gate", f"g{index}", value=value) for index, value in enumerate("abc")]


def test_nothing_paused_is_refused():
    with pytest.raises(ResumeRefused, match="nothing is paused in this run"):
        Pauses().check(None, {}, FLOW_TASKS)


def test_every_pause_by_default_or_those_of_a_task_id_or_one_task_run_id():
    pauses = registry(*GATES)
    assert [p.task_run.value for p, _ in pauses.check(None, {}, FLOW_TASKS)] == ["a", "b", "c"]
    assert [p.task_run.value for p, _ in pauses.check("gate", {}, FLOW_TASKS)] == ["a", "b", "c"]
    assert [p.task_run.value for p, _ in pauses.check("g1", {}, FLOW_TASKS)] == ["b"]


@pytest.mark.parametrize(("task", "message"), [
    ("first", "task `first` is not paused (paused now: `gate`)"),
    ("nope", "the flow has no task `nope` (paused now: `gate`)"),
])
def test_a_task_that_is_not_paused_is_refused_by_name(task: str, message: str):
    with pytest.raises(ResumeRefused) as refused:
        registry(*GATES).check(task, {}, FLOW_TASKS)
    assert str(refused.value) == message


def test_resume_inputs_are_resolved_as_flow_inputs_and_checked():
    pauses = registry(APPROVE)
    [(_, values)] = pauses.check("approve", {"ok": "true"}, FLOW_TASKS)
    assert values == {"ok": True, "note": "-"}
    with pytest.raises(ResumeRefused, match=r"unknown resume input\(s\) `colour` \(the pause declares `note`, `ok`"):
        pauses.check(None, {"ok": "true", "colour": "red"}, FLOW_TASKS)
    with pytest.raises(ResumeRefused, match=r"task `approve`: input `ok` \(BOOLEAN\)"):
        pauses.check(None, {"ok": "maybe"}, FLOW_TASKS)
    with pytest.raises(ResumeRefused, match="input `ok` .*required"):
        pauses.check(None, {}, FLOW_TASKS)
    assert APPROVE.given is None, "check changes nothing"


def test_resume_sets_the_inputs_the_waiting_task_wakes_on():
    pauses = registry(APPROVE, *GATES)
    resumed = pauses.resume(None, {"ok": "false"}, FLOW_TASKS)
    assert [entry["task_id"] for entry in resumed] == ["approve", "gate", "gate", "gate"]
    assert resumed[0]["inputs"] == {"ok": False, "note": "-"}
    assert APPROVE.given == {"ok": False, "note": "-"} and all(gate.given == {} for gate in GATES)


def test_status_says_how_to_resume_and_when_it_goes_on_by_itself():
    waiting = {**paused("gate", "g9", value="x").describe(), "resumes_at": "2026-01-01T00:01:00.000Z"}
    approve = APPROVE.describe()
    lines = waiting_lines({"run_id": "run-1", "waiting_for": [approve, waiting]})
    assert lines[0].startswith("Paused at task `approve` since 2026-01-01T00:00:00.000Z")
    assert "`tflow resume run-1 approve --input ok=... --input note=...`" in lines[0]
    assert "`tflow resume run-1 gate`, or it resumes itself at 2026-01-01T00:01:00.000Z" in lines[1]
    assert "gate [x]" in lines[1]


PAUSE_FLOW = """\
id: p
namespace: tests
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    delay: PT1M
    behavior: <<behavior>>
    onResume:
      - id: ok
        type: <<type>>
        defaults: "true"
"""


def test_a_pause_reads_its_properties_and_declares_resume_inputs_as_flow_inputs():
    task = load_flow_text(PAUSE_FLOW.replace("<<behavior>>", "WARN").replace("<<type>>", "BOOL"), "flow.yaml").flow.tasks[0]
    assert task.type == "pause"
    assert task.properties["pause_duration"] == 60 and task.properties["behavior"] == "WARN"
    assert task.properties["on_resume"] == [{"id": "ok", "type": "BOOLEAN", "defaults": True}]


def test_bad_pause_properties_are_named_with_their_line():
    with pytest.raises(FlowError) as raised:
        load_flow_text(PAUSE_FLOW.replace("<<behavior>>", "SNOOZE").replace("<<type>>", "BOOLEEN"), "flow.yaml")
    problems = [str(problem) for problem in raised.value.problems]
    assert any(problem.startswith("flow.yaml:7:15: `behavior` must be one of `RESUME`") for problem in problems), problems
    assert any(problem.startswith("flow.yaml:10:15:") and "unknown input type `BOOLEEN`" in problem for problem in problems), problems


def test_run_progress_says_once_how_to_resume_each_new_pause(capsys: pytest.CaptureFixture[str]):
    printer = ProgressPrinter()
    gate = {**paused("gate", "g1").task_run.to_dict(), "state": "PAUSED"}
    snapshot = {"run_id": "run-1", "task_runs": [gate], "waiting_for": [paused("gate", "g1").describe()]}
    printer.update(snapshot)
    printer.update(snapshot)
    out = capsys.readouterr().out
    assert "PAUSED" in out and out.count("`tflow resume run-1 gate`") == 1, out
