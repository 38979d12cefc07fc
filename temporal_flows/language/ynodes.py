"""Building YAML mappings and lists that keep where each part was written, for the steps that
rewrite a flow before it is checked (plugin defaults merged in, Kestra's respelled properties): a
value taken from elsewhere (a default in another file) keeps its own file, line and column, so a
problem in it points there."""

from __future__ import annotations

from typing import Any, Iterable

from temporal_flows.language.source import YList, YMap
from temporal_flows.model.flow import Location


def new_map(location: Location) -> YMap:
    mapping = YMap()
    mapping.location = location
    mapping.key_locations, mapping.value_locations = {}, {}
    return mapping


def put(mapping: YMap, key: str, value: Any, key_location: Location, value_location: Location) -> None:
    mapping[key] = value
    mapping.key_locations[key] = key_location
    mapping.value_locations[key] = value_location


def copy_entry(target: YMap, source: YMap, key: str, as_key: str | None = None) -> None:
    """`source[key]` into `target` (under `as_key`), with its locations."""
    put(target, as_key or key, source[key], source.key_location(key), source.value_location(key))


def new_list(items: Iterable[tuple[Any, Location]], location: Location) -> YList:
    pairs = list(items)
    listed = YList(item for item, _ in pairs)
    listed.location = location
    listed.item_locations = [where for _, where in pairs]
    return listed


def location_of(value: Any, fallback: Location) -> Location:
    """Where a mapping or list stands; a scalar has no place of its own."""
    return getattr(value, "location", fallback)


def node_count(value: Any) -> int:
    """Mappings, lists and scalars in `value` (walked without recursion: a value may be deep)."""
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count
