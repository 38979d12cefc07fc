"""The workflow side's size bounds (issue 14 B.2) measured as the SDK writes payloads, without
recursion, and the ledger's own count of what recording it will add to the history."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from temporalio.converter import default

from temporal_flows.engine.ledger import Ledger
from temporal_flows.engine.workflow import _batches
from temporal_flows.model.runs import State
from temporal_flows.tasks.payloads import (
    ERROR_MESSAGE_LIMIT_CHARS, MAX_DEPTH, PayloadTooLarge, bounded_error, check_size, measure, shorten, too_deep,
)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("value", [
    {"text": "é" * 1000, "emoji": "😀" * 10, "n": [1, 2.5, None, True], "nested": {"a": {"b": ["c"]}}},
    "plain", 12345, [], {},
])
def test_measure_is_the_size_of_the_sdks_json_payload(value):
    [payload] = default().payload_converter.to_payloads([value])
    assert measure(value, "v") == len(payload.data)


def test_depth_is_bounded_without_recursion():
    assert not too_deep(nested(MAX_DEPTH))
    assert too_deep(nested(MAX_DEPTH + 1))
    assert too_deep(nested(200_000)), "walked without recursion, whatever the depth"
    with pytest.raises(PayloadTooLarge) as raised:
        measure({"a": nested(200_000)}, "the outputs of task `t`")
    assert raised.value.error_type == "OutputTooDeep" and "the outputs of task `t`" in raised.value.message


def test_check_size_names_what_the_size_and_the_limit():
    assert check_size({"v": "x" * 100}, "v", 200) == len('{"v":""}') + 100
    with pytest.raises(PayloadTooLarge) as raised:
        check_size({"v": "é" * 100}, "the outputs of task `t`", 200)
    assert raised.value.error == {
        "type": "ResultTooLarge",
        "message": raised.value.message,
    }
    assert "the outputs of task `t`: too large (608 bytes as JSON, the limit is 200)" in raised.value.message


def test_error_messages_are_cut_with_a_note():
    exact = "e" * ERROR_MESSAGE_LIMIT_CHARS
    assert shorten(exact) == exact
    cut = shorten(exact + "tail")
    assert cut == exact + "... [4 more characters left out]"
    error = {"type": "Fail", "message": exact + "x" * 10_000, "task_id": "t"}
    assert bounded_error(error) == {"type": "Fail", "message": exact + "... [10,000 more characters left out]", "task_id": "t"}
    assert bounded_error(None) is None


def test_ledger_counts_the_bytes_it_will_record():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = iter(range(100))
    ledger = Ledger(now=lambda: now, new_id=lambda: f"id{next(ids)}")
    for index in range(5):
        task_run = ledger.open(f"t{index}", "return", None)
        ledger.close(task_run, State.SUCCESS, outputs={"value": "é" * 100 * index})
    expected = sum(len(json.dumps(entry, separators=(",", ":"))) for entry in ledger.to_list())
    assert ledger.bytes == expected
    pages = ledger.pages(1_000)
    assert sum(len(page.task_runs) for page in pages) == 5 and len(pages) > 1
    assert all(page.size <= 1_000 or len(page.task_runs) == 1 for page in pages)
    assert "size" not in pages[0].to_dict(), "a page's payload is unchanged"


def test_ledger_pages_are_cut_into_batches_under_the_send_limit():
    assert _batches([1, 1, 1], 2) == [[0, 1], [2]]
    assert _batches([5, 1], 2) == [[0], [1]], "a page bigger than the limit goes alone"
    assert _batches([], 2) == [[]]
