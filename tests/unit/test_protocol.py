"""Kestra's `::{json}::` output protocol: which lines are consumed and what they produce."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError

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


# -- bounds (activities.bounds): a line past one fails the task with a named error ------------


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_an_output_64_deep_is_kept_and_one_level_more_fails_the_task() -> None:
    from activities.bounds import MAX_DEPTH

    state = ProtocolState()
    assert state.feed(f'::{{"outputs": {{"v": {deep(MAX_DEPTH)}}}}}::')
    with pytest.raises(ApplicationError, match=f"deeper than {MAX_DEPTH} levels") as raised:
        state.feed(f'::{{"outputs": {{"w": {deep(MAX_DEPTH + 1)}}}}}::')
    assert raised.value.type == "OutputTooDeep" and raised.value.non_retryable
    assert list(state.vars) == ["v"]


@pytest.mark.parametrize("depth", [900, 100_000])
def test_a_line_nesting_past_the_parser_limit_is_output_too_deep_not_recursion_error(depth: int) -> None:
    with pytest.raises(ApplicationError) as raised:
        parse_protocol_line(f'::{{"outputs": {{"v": {deep(depth)}}}}}::')
    assert raised.value.type == "OutputTooDeep"


def test_metrics_past_their_bound_fail_and_vars_past_theirs_too() -> None:
    from activities.bounds import MAX_METRICS, MAX_OUTPUT_VARS

    state = ProtocolState()
    metric = {"name": "rows", "type": "counter", "value": 1}
    assert state.feed(line({"metrics": [metric] * MAX_METRICS}))
    with pytest.raises(ApplicationError, match=f"more than {MAX_METRICS:,}") as raised:
        state.feed(line({"metrics": metric}))
    assert raised.value.type == "ResultTooLarge"
    with pytest.raises(ApplicationError, match="`vars`") as raised:
        ProtocolState().feed(line({"outputs": {f"k{i}": i for i in range(MAX_OUTPUT_VARS + 1)}}))
    assert raised.value.type == "ResultTooLarge"


def test_logs_past_their_budget_are_left_out_with_a_marker_but_still_reach_the_task_log() -> None:
    from activities.bounds import PROTOCOL_LOGS_LIMIT_CHARS

    state = ProtocolState()
    message = "x" * 1000
    fed = PROTOCOL_LOGS_LIMIT_CHARS // 1000 + 50
    for _ in range(fed):
        assert state.feed(line({"logs": {"message": message}}))
        assert state.line_logs == [{"level": "INFO", "message": message}], "every line's logs go to the task log"
    kept = PROTOCOL_LOGS_LIMIT_CHARS // 1000
    assert len(state.logs) == kept and state.logs_left_out == fed - kept
    assert state.result_logs()[-1]["message"].startswith(f"… {fed - kept} protocol log entries left out")


def test_protocol_lines_past_their_total_fail_the_task() -> None:
    state = ProtocolState(limit_chars=100)
    assert state.feed(line({"outputs": {"a": "x" * 60}}))
    with pytest.raises(ApplicationError, match="more than 100 characters together") as raised:
        state.feed(line({"outputs": {"a": "y"}}))
    assert raised.value.type == "ResultTooLarge"
