"""Live task logs without a server: the heartbeat's log window is bounded and numbered, a reader
that fell behind gets a gap note, and a closed log yields only the lines not shown live (also
when the final log left lines out between its head and tail)."""

from __future__ import annotations

import asyncio

from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.converter import DataConverter

from activities.task_log import LIVE_LINES, TaskLog
from client.task_logs import _LogCollector, _not_shown


def test_live_window_keeps_the_last_lines_numbered() -> None:
    log = TaskLog()
    for number in range(LIVE_LINES + 50):
        log.add("INFO", f"line {number}")
    window = log.live_window()
    assert window["log_count"] == LIVE_LINES + 50 and window["log_from"] == 50
    assert [line["message"] for line in window["log_lines"]][:2] == ["line 50", "line 51"]
    assert len(window["log_lines"]) == LIVE_LINES


def test_a_closed_log_yields_only_what_was_not_shown() -> None:
    log = TaskLog(head_chars=2 * 60, tail_chars=2 * 60)  # two short lines each
    for number in range(7):
        log.add("INFO", f"l{number}")
    final = log.entries()
    assert [line["message"] for line in final][0:2] == ["l0", "l1"] and "3 log lines left out" in final[2]["message"]
    assert [line["message"] for line in _not_shown(final, 1)][:1] == ["l1"]
    assert [line["message"] for line in _not_shown(final, 4)] == [final[2]["message"], "l5", "l6"]
    assert [line["message"] for line in _not_shown(final, 6)] == ["l6"]
    assert _not_shown(final, 7) == []


def test_a_reader_that_fell_behind_gets_a_gap_note() -> None:
    converter = DataConverter.default
    collector = _LogCollector(converter)
    collector._scheduled[5] = ("t", "run-1", "t")  # noqa: SLF001 - as a scheduled event records it
    collector._activity_ids["1"] = 5  # noqa: SLF001

    async def read(log: TaskLog) -> list[str]:
        pending = PendingActivityInfo(activity_id="1")
        pending.heartbeat_details.payloads.extend(await converter.encode([log.live_window()]))
        attempt = await collector.live(pending)
        return [] if attempt is None else [line["message"] for line in attempt.lines]

    log = TaskLog()
    log.add("INFO", "a")
    assert asyncio.run(read(log)) == ["a"]
    assert asyncio.run(read(log)) == []  # nothing new
    for number in range(LIVE_LINES + 3):
        log.add("INFO", f"n{number}")
    lines = asyncio.run(read(log))
    assert lines[0].startswith("… 3 log lines not shown live") and lines[1] == "n3" and lines[-1] == f"n{LIVE_LINES + 2}"
