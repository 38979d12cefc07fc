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
    branches: dict[str, list[Task]] = field(default_factory=dict)
    """Other lists of child tasks, by name: `errors`, `finally`, an if's `then`/`else`, a switch's
    `defaults` and `case <key>` (see the task type's module)."""
    retry: dict[str, Any] | None = None
    """The task's own `retry`, normalized (see `temporal_flows.model.retries`)."""
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
        for child in self.children():
            found.extend(child.walk())
        return found

    def children(self) -> list[Task]:
        """Direct children from every list: `tasks`, then each branch in order."""
        return [*self.tasks, *(child for branch in self.branches.values() for child in branch)]

    def to_input(self) -> dict[str, Any]:
        """The compact form carried in the workflow input: defaults left out, the location as
        [line, column] (the file is the flow's), since the input's size is bounded by Temporal."""
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        for name, default in _TASK_DEFAULTS.items():
            value = getattr(self, name)
            if value != default:
                data[name] = value
        if self.tasks:
            data["tasks"] = [child.to_input() for child in self.tasks]
        if self.branches:
            data["branches"] = {name: [child.to_input() for child in branch] for name, branch in self.branches.items()}
        if self.location is not None:
            data["location"] = [self.location.line, self.location.column]
        return data

    @staticmethod
    def from_dict(data: dict[str, Any], file: str = "") -> Task:
        """From `to_input()`'s compact form or the full `asdict` form (runs started before it)."""
        values = dict(data)
        values["tasks"] = [Task.from_dict(child, file) for child in values.get("tasks", [])]
        values["branches"] = {
            name: [Task.from_dict(child, file) for child in branch] for name, branch in values.get("branches", {}).items()
        }
        location = values.get("location")
        if isinstance(location, dict):
            values["location"] = Location(**location)
        elif isinstance(location, list):
            values["location"] = Location(file, *location)
        return Task(**values)


_TASK_DEFAULTS: dict[str, Any] = {
    "properties": {}, "description": None, "disabled": False, "run_if": None, "allow_failure": False,
    "allow_warning": False, "timeout_s": None, "worker_group": None, "retry": None,
}
"""Task fields (besides id, type, tasks, branches, location) and the values `to_input` leaves out."""


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
    errors: list[Task] = field(default_factory=list)
    """Run, in order, after a failure of the flow's tasks (SPEC §3.5)."""
    finally_tasks: list[Task] = field(default_factory=list)
    """Always run, in order, at the end (the flow's `finally`)."""
    retry: dict[str, Any] | None = None
    """The retry every runnable and pure task without a nearer one gets."""
    inputs: list[dict[str, Any]] = field(default_factory=list)
    """Declared inputs (SPEC §5), normalized by `temporal_flows.language.input_declarations`: snake_case keys."""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    """`[{id, type, value}]` rendered when the run ends into the result's `outputs`."""
    triggers: list[dict[str, Any]] = field(default_factory=list)
    """Triggers (SPEC §5), normalized by `temporal_flows.language.triggers`; `tflow run` ignores them."""

    def all_tasks(self) -> list[Task]:
        found: list[Task] = []
        for task in (*self.tasks, *self.errors, *self.finally_tasks):
            found.extend(task.walk())
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_input(self) -> dict[str, Any]:
        """The workflow input: like `to_dict`, with each task in its compact form."""
        data = {key: value for key, value in self.to_dict().items() if key not in _TASK_LISTS}
        for name in _TASK_LISTS:
            tasks = getattr(self, name)
            if tasks or name == "tasks":
                data[name] = [task.to_input() for task in tasks]
        for name in ("retry", "inputs", "outputs", "triggers"):
            if not data.get(name):
                data.pop(name, None)  # runs started before these existed had none: keep inputs alike
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Flow:
        values = dict(data)
        for name in _TASK_LISTS:
            values[name] = [Task.from_dict(task, values.get("source_file", "")) for task in values.get(name, [])]
        return Flow(**values)

    def digest(self) -> str:
        """A stable hash of the normalized definition, recorded on every run."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


_TASK_LISTS = ("tasks", "errors", "finally_tasks")
"""The flow's lists of tasks, in the order they run."""


class Strategy:
    WAIT_ALL = "wait_all"
    FAIL_FAST = "fail_fast"
    BEST_EFFORT = "best_effort"
    RACE = "race"


class OnFailure:
    """What one child's failure does instead of its group's rule (a step's `on_error`, SPEC §3.1)."""

    SKIP = "skip"
    """Its dependents, and theirs, are SKIPPED; other children go on."""
    CONTINUE = "continue"
    """Its dependents run as if it had succeeded."""
