from __future__ import annotations

import pytest

from cli.progress import ProgressPrinter, _tree_order, ui_line


def test_result_table_groups_children_under_their_parent():
    runs = [
        {"id": "p", "parent_id": None}, {"id": "s1", "parent_id": "p"}, {"id": "s2", "parent_id": "p"},
        {"id": "a", "parent_id": "s1"}, {"id": "b", "parent_id": "s2"}, {"id": "c", "parent_id": "s1"},
        {"id": "last", "parent_id": None},
    ]
    assert [run["id"] for run in _tree_order(runs)] == ["p", "s1", "a", "c", "s2", "b", "last"]


T0, T1, T2 = "2026-01-01T10:00:00+00:00", "2026-01-01T10:00:01.250000+00:00", "2026-01-01T10:00:02.500000+00:00"


def run(id: str, state: str, started: str | None, ended: str | None = None, parent: str | None = None) -> dict:
    return {"id": id, "task_id": id, "parent_id": parent, "value": None, "state": state, "started_at": started, "ended_at": ended}


def printed(printer: ProgressPrinter, task_runs: list[dict], capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str]]:
    """(state, task id) of each line one update prints, in order."""
    printer.update({"task_runs": task_runs})
    return [tuple(line.split()[1:3]) for line in capsys.readouterr().out.splitlines()]


class TestProgressOrder:
    def test_a_group_ends_after_its_last_child_that_ended_in_the_same_instant(self, capsys: pytest.CaptureFixture[str]):
        printer = ProgressPrinter()
        first = [run("g", "RUNNING", T0), run("a", "SUCCESS", T0, T1, "g"), run("b", "RUNNING", T1, None, "g")]
        assert printed(printer, first, capsys) == [
            ("RUNNING", "g"), ("RUNNING", "a"), ("SUCCESS", "a"), ("RUNNING", "b")]
        second = [run("g", "SUCCESS", T0, T2), run("a", "SUCCESS", T0, T1, "g"), run("b", "SUCCESS", T1, T2, "g")]
        assert printed(printer, second, capsys) == [("SUCCESS", "b"), ("SUCCESS", "g")]

    def test_a_whole_run_in_one_instant_nests_and_follows_creation_order(self, capsys: pytest.CaptureFixture[str]):
        task_runs = [
            run("g", "SUCCESS", T0, T0), run("a", "SUCCESS", T0, T0, "g"), run("b", "FAILED", T0, T0, "g"),
            run("next", "SUCCESS", T0, T0),
        ]
        assert printed(ProgressPrinter(), task_runs, capsys) == [
            ("RUNNING", "g"), ("RUNNING", "a"), ("SUCCESS", "a"), ("RUNNING", "b"), ("FAILED", "b"), ("SUCCESS", "g"),
            ("RUNNING", "next"), ("SUCCESS", "next")]

    def test_time_decides_before_creation_order_whatever_the_iso_form(self, capsys: pytest.CaptureFixture[str]):
        printer = ProgressPrinter()
        printed(printer, [run("slow", "RUNNING", T0), run("fast", "RUNNING", T0)], capsys)
        task_runs = [run("slow", "SUCCESS", T0, "2026-01-01T10:00:02Z"), run("fast", "SUCCESS", T0, "2026-01-01T10:00:01.900000+00:00")]
        assert printed(printer, task_runs, capsys) == [("SUCCESS", "fast"), ("SUCCESS", "slow")]


def test_the_ui_line_says_when_the_ui_is_unknown():
    assert ui_line("http://127.0.0.1:8233/namespaces/default/workflows/r") == "Temporal UI: http://127.0.0.1:8233/namespaces/default/workflows/r"
    assert ui_line(None) == "Temporal UI: unknown (pass --ui-url or set TEMPORAL_UI_URL)"
