"""The typed, normalized flow: what the loader produces and the interpreter workflow consumes.

A normalized flow is plain data (it round-trips through `to_dict`/`from_dict`), because it is the
workflow's input: every run is pinned to the definition it started with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class TaskKind(str, Enum):
    """How the interpreter executes a task type."""

    FLOWABLE = "flowable"
    """Decided inside the workflow; owns child tasks run by the scheduler."""
    RUNNABLE = "runnable"
    """Has side effects: runs as a Temporal activity on a worker."""
    PURE = "pure"
    """Evaluated inside the workflow without an activity (Return, Log, ...)."""


@dataclass(frozen=True)
class Location:
    """Where a node stands in its source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class Task:
    """One task of a flow, with its type resolved to the canonical name and keys in snake_case."""

    id: str
    type: str
    properties: dict[str, Any] = field(default_factory=dict)
    """Type-specific properties (templated values stay unrendered until the task starts)."""
    tasks: list[Task] = field(default_factory=list)
    """Children of a flowable task."""
    description: str | None = None
    disabled: bool = False
    run_if: str | None = None
    allow_failure: bool = False
    allow_warning: bool = False
    timeout_s: float | None = None
    worker_group: str | None = None
    location: Location | None = None

    def walk(self) -> list[Task]:
        """This task and all its descendants, depth first, in declaration order."""
        found = [self]
        for child in self.tasks:
            found.extend(child.walk())
        return found

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Task:
        values = dict(data)
        values["tasks"] = [Task.from_dict(child) for child in values.get("tasks", [])]
        if values.get("location") is not None:
            values["location"] = Location(**values["location"])
        return Task(**values)


@dataclass
class Flow:
    """A whole flow: identity, metadata and its top-level tasks."""

    id: str
    namespace: str
    tasks: list[Task]
    description: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    source_file: str = ""
    dialect: str = "tasks"

    def all_tasks(self) -> list[Task]:
        found: list[Task] = []
        for task in self.tasks:
            found.extend(task.walk())
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Flow:
        values = dict(data)
        values["tasks"] = [Task.from_dict(task) for task in values.get("tasks", [])]
        return Flow(**values)

    def digest(self) -> str:
        """A stable hash of the normalized definition, recorded on every run."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()
