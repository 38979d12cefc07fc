"""Payload dataclasses from and to their JSON form, cheaply, for the busiest activities.

The SDK's converter resolves a dataclass's type hints and checks every field on each call (about
0.15 ms to decode a `CommandsRequest`, a tenth of a `commands` task's own worker CPU), and encodes a
result with `dataclasses.asdict`, a deep copy. The interpreter built these payloads from the same
dataclasses (`activities.api`), so the worker needs only their nesting: the wire format is unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, TypeVar

T = TypeVar("T")


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, type | None], ...]:
    """(name, dataclass type when the field holds one) of each init field of `cls`, resolved once."""
    hints = typing.get_type_hints(cls)
    return tuple((field.name, hints[field.name] if dataclasses.is_dataclass(hints[field.name]) else None)
                 for field in dataclasses.fields(cls) if field.init)


def from_wire(cls: type[T], data: Any) -> T:
    """`cls` from its JSON object: unknown keys are ignored and missing ones take their defaults
    (as the SDK does, so a newer workflow's extra field does not break an older worker)."""
    if not isinstance(data, dict):
        raise TypeError(f"cannot make {cls.__name__} from {type(data).__name__}, expected an object")
    values = {}
    for name, nested in _fields(cls):
        if name in data:
            value = data[name]
            values[name] = from_wire(nested, value) if nested is not None and value is not None else value
    return cls(**values)


def to_wire(value: Any) -> dict[str, Any]:
    """The JSON object of a payload dataclass: its fields, nested dataclasses as objects, other
    values shared (not copied: the SDK serializes them at once)."""
    return {name: to_wire(item) if nested is not None and item is not None else item
            for name, nested in _fields(type(value)) for item in (getattr(value, name),)}
