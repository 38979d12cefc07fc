"""Kestra's `::{json}::` output protocol: which lines are consumed and what they produce."""

from __future__ import annotations

import json

import pytest

from activities.protocol import ProtocolState, parse_protocol_line


def line(payload: object) -> str:
    return f"::{json.dumps(payload)}::"


def test_outputs_merge_later_wins() -> None:
    state = ProtocolState()
    assert state.feed(line({"outputs": {"a": 1, "b": "x"}}))
    assert state.feed(line({"outputs": {"b": [1, 2], "c": {"d": True}}}) + "\n")
    assert state.vars == {"a": 1, "b": [1, 2], "c": {"d": True}}


def test_metrics_are_appended_and_normalised() -> None:
    state = ProtocolState()
    state.feed(line({"metrics": [{"name": "rows", "type": "counter", "value": 3, "tags": {"db": "pg", "n": 1}}]}))
    state.feed(line({"metrics": [{"name": "took", "type": "timer", "value": 1.5},
                                 {"name": "load", "type": "gauge", "value": 0.7}]}))
    assert state.metrics == [
        {"name": "rows", "type": "counter", "value": 3, "tags": {"db": "pg", "n": "1"}},
        {"name": "took", "type": "timer", "value": 1.5, "tags": {}},
        {"name": "load", "type": "gauge", "value": 0.7, "tags": {}},
    ]


def test_logs_single_object_or_list() -> None:
    state = ProtocolState()
    state.feed(line({"logs": {"level": "warning", "message": "careful"}}))
    state.feed(line({"logs": [{"level": "ERROR", "message": "bad"}, {"message": "plain"}]}))
    assert state.logs == [
        {"level": "WARN", "message": "careful"},
        {"level": "ERROR", "message": "bad"},
        {"level": "INFO", "message": "plain"},
    ]


def test_one_line_can_carry_everything() -> None:
    state = ProtocolState()
    assert state.feed(line({"outputs": {"k": "v"}, "metrics": {"name": "m", "type": "counter", "value": 1},
                            "logs": [{"level": "INFO", "message": "hi"}]}))
    assert state.vars == {"k": "v"}
    assert [m["name"] for m in state.metrics] == ["m"]
    assert state.logs == [{"level": "INFO", "message": "hi"}]


@pytest.mark.parametrize("text", [
    "hello",
    "::{not json}::",
    "::[1, 2]::",
    '::{"outputs": {"a": 1}}',
    ' ::{"outputs": {"a": 1}}::',
    '::{"outputs": {"a": 1}}:: ',
    "::::",
    "",
])
def test_other_lines_are_log_lines(text: str) -> None:
    state = ProtocolState()
    assert not state.feed(text)
    assert parse_protocol_line(text) is None
    assert state == ProtocolState()


def test_crlf_line_is_still_protocol() -> None:
    assert parse_protocol_line('::{"outputs": {"a": 1}}::\r\n') == {"outputs": {"a": 1}}


def test_malformed_parts_are_ignored_but_line_is_consumed() -> None:
    state = ProtocolState()
    assert state.feed(line({
        "outputs": [1],
        "metrics": [{"name": "ok", "type": "counter", "value": 1},
                    {"name": "bad", "type": "histogram", "value": 1},
                    {"name": "bad", "type": "counter", "value": "1"},
                    {"name": "bad", "type": "counter", "value": True}],
        "logs": ["not an object"],
    }))
    assert state.vars == {}
    assert [m["name"] for m in state.metrics] == ["ok"]
    assert state.logs == []
    assert len(state.ignored) == 5


def test_empty_object_is_consumed() -> None:
    state = ProtocolState()
    assert state.feed("::{}::")
    assert state == ProtocolState()
