"""activities.bounds: depth and item counts measured without recursion, JSON of any nesting parsed
without RecursionError, and the result size bound."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError

from activities.bounds import MAX_DEPTH, MAX_ITEMS, RESULT_LIMIT_BYTES, check_result_size, check_value, json_loads


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_depth_is_measured_without_recursion_at_any_depth():
    check_value(nested(MAX_DEPTH), "v")
    check_value({"a": {"b": nested(MAX_DEPTH - 2)}}, "v")
    for depth in (MAX_DEPTH + 1, 100_000):
        with pytest.raises(ApplicationError, match=f"v nests deeper than {MAX_DEPTH} levels") as raised:
            check_value(nested(depth), "v")
        assert raised.value.type == "OutputTooDeep" and raised.value.non_retryable
    with pytest.raises(ApplicationError):
        check_value({"a": nested(MAX_DEPTH)}, "v")
    check_value({"a": nested(MAX_DEPTH)}, "v", wrapping=1)


def test_items_are_counted_over_every_level():
    check_value([[0] * 1_000] * (MAX_ITEMS // 1_001), "v")
    with pytest.raises(ApplicationError, match="more than 100,000 keys and items") as raised:
        check_value([{"k": [0] * 1_000}] * (MAX_ITEMS // 1_000), "v")
    assert raised.value.type == "ResultTooLarge"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 1_000_000])
def test_json_of_any_nesting_is_output_too_deep_never_recursion_error(depth: int):
    with pytest.raises(ApplicationError) as raised:
        json_loads("[" * depth + "]" * depth, "The body")
    assert raised.value.type == "OutputTooDeep"
    assert json_loads("[" * MAX_DEPTH + "]" * MAX_DEPTH, "The body") == nested(MAX_DEPTH)
    with pytest.raises(ValueError):
        json_loads("not json", "The body")


def test_the_result_size_is_measured_as_the_converter_writes_it():
    check_result_size({"v": "x" * (RESULT_LIMIT_BYTES - 100)}, "r")
    with pytest.raises(ApplicationError, match="is too large") as raised:
        check_result_size({"v": "\x00" * (RESULT_LIMIT_BYTES // 5)}, "r")  # escaped as \u0000: 6 bytes each
    assert raised.value.type == "ResultTooLarge"
    assert len(json.dumps("\x00")) == 8
