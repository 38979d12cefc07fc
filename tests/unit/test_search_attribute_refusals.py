"""`start_run` retries without search attributes only when the server does not know them (messages
as a real dev server words them), never when it refuses a value such as labels past 2048 bytes."""

from __future__ import annotations

from temporalio.service import RPCError, RPCStatusCode

from client.runs import lacks_search_attributes


def refusal(message: str) -> RPCError:
    return RPCError(message, RPCStatusCode.INVALID_ARGUMENT, b"")


def test_an_unknown_search_attribute_is_told_apart_from_a_refused_value():
    assert lacks_search_attributes(refusal("Namespace default has no mapping defined for search attribute TflowFlowId"))
    assert lacks_search_attributes(refusal("search attribute TflowFlowId is not defined"))
    assert not lacks_search_attributes(refusal("search attribute TflowLabels value size 3006 exceeds size limit 2048"))
    assert not lacks_search_attributes(refusal("workflow id is not valid"))
