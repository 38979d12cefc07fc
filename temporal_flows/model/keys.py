"""How property names are spelled: flows may write camelCase or snake_case (SPEC §3.1); the model
keeps snake_case, and messages and the schema show Kestra's camelCase."""

from __future__ import annotations

import re

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(key: str) -> str:
    """`allowFailure` → `allow_failure`; snake_case keys are unchanged."""
    return _CAMEL_BOUNDARY.sub("_", key).lower()


def camel_case(name: str) -> str:
    """`allow_failure` → `allowFailure` (the inverse of `snake_case`)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
