"""The contract between the interpreter workflow and the workers: activity names and payloads.

Frozen dataclasses only (no behaviour), so the workflow can import this module inside Temporal's
sandbox and both sides agree on the wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMMANDS_ACTIVITY = "tflow.commands"
"""Activity type name of the shell `commands` runnable (see :mod:`activities.commands`)."""


@dataclass(frozen=True)
class CommandsRequest:
    """Run shell `commands` in one shell, `set -e` style, in a working directory."""

    run_id: str
    task_id: str
    task_run_id: str
    commands: list[str]
    env: dict[str, str] = field(default_factory=dict)
    interpreter: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    working_directory: str | None = None
    """None: a fresh temporary directory, removed after the task."""
    fail_fast: bool = True
    """Prefix the script with `set -e`, so the first failing command fails the task (Kestra)."""
    timeout_s: float | None = None
    """The task's own `timeout`: past it the process is killed and the task fails (type `Timeout`)."""


@dataclass(frozen=True)
class CommandsResult:
    """What a finished `commands` task produced (also carried as details of its failure)."""

    exit_code: int
    vars: dict[str, Any] = field(default_factory=dict)
    """`outputs` merged from `::{json}::` lines."""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """`metrics` from `::{json}::` lines: {name, type, value, tags}."""
    logs: list[dict[str, Any]] = field(default_factory=list)
    """`logs` from `::{json}::` lines: {level, message}."""
    stdout_tail: str = ""
    stderr_tail: str = ""
    """The last lines of each stream (bounded), for error messages and `tflow status`."""
