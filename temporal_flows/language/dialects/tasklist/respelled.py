"""Kestra types run as one of ours whose properties Kestra names differently (`RESPELLED` in
`temporal_flows.tasks.kestra_aliases`): the task's mapping rewritten in our names before it is checked,
each value keeping where it was written."""

from __future__ import annotations

import copy

from temporal_flows.language.source import YMap
from temporal_flows.language.ynodes import copy_entry, new_list, new_map, put
from temporal_flows.model.keys import snake_case
from temporal_flows.tasks.kestra_aliases import RESPELLED


def respelled(node: YMap, written_type: str) -> YMap:
    """`node` in our property names when `written_type` is a respelled Kestra type, else `node`."""
    spelling = RESPELLED.get(written_type)
    if spelling is None:
        return node
    result = new_map(node.location)
    for key in node:
        ours = spelling.renamed.get(snake_case(key))
        if ours is None or any(snake_case(other) == ours for other in node):
            copy_entry(result, node, key)  # kept as written: a clash is the checks' to report
            continue
        value = node[key]
        if ours in spelling.listed and isinstance(value, str):
            value = new_list([(value, node.value_location(key))], node.value_location(key))
        put(result, ours, value, node.key_location(key), node.value_location(key))
    for name, value in spelling.implied.items():
        if not any(snake_case(key) == name for key in result):
            put(result, name, copy.deepcopy(value), node.location, node.location)
    return result


def written_name(written_type: str, ours: str) -> str:
    """How a task of `written_type` names our property `ours` (for messages)."""
    spelling = RESPELLED.get(written_type)
    if spelling is not None:
        for theirs, renamed in spelling.renamed.items():
            if renamed == ours:
                return theirs
    return ours
