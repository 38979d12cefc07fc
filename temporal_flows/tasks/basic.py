"""`basic`: the `parallel` spec's child, a task decided by its fields (SPEC §3.2).

`commands` → commands, `script` → script, `request`/`url` → http, `return` → return. The dialect
normalizes a `basic` task as the type its fields select, so nothing downstream knows about it.
"""

from __future__ import annotations

from typing import Any, Mapping

from temporal_flows.model.flow import TaskKind
from temporal_flows.tasks.base import TaskType

SELECTORS = (("commands", "commands"), ("script", "script"), ("request", "http"), ("url", "http"), ("return", "return"))
"""(field present, type it selects), in the order they are tried."""


def delegate(fields: Mapping[str, Any]) -> str | None:
    for field_name, type_name in SELECTORS:
        if field_name in fields:
            return type_name
    return None


TYPE = TaskType(
    "basic",
    TaskKind.RUNNABLE,
    (),
    {},
    "a task decided by its fields: " + ", ".join(f"`{field}`" for field, _ in SELECTORS),
    delegate=delegate,
)
