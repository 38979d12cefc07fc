"""`log`: the rendered `message` (or each of a list of messages) becomes a line of this task run's
log at its `level`, kept in its outputs (`logs`: deterministic, beside the ledger) where `tflow
status --logs`, `tflow run --logs` and the web view read it; the task's `logLevel` drops lines below it.

Kestra's deprecated `Echo` is the same task with `format` for `message`."""

from __future__ import annotations

import logging
from typing import Any

from temporalio import workflow

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.plan import ChildResult

LEVELS = {"TRACE": logging.DEBUG - 5, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}
LOG_LINES_PATCH = "log-task-lines-in-outputs"
"""Runs recorded before Log messages became log lines kept nothing in the task's outputs."""
MAX_LINES = 1000
LINE_CHARS = 4 * 1024
"""Bounds on what one Log task keeps (a longer message is cut, with a note of its length)."""


def log_lines(ctx: TaskContext, messages: list[Any], level: str) -> list[dict[str, Any]]:
    """The kept lines: at or above the task's `logLevel`, bounded in count and length."""
    floor = LEVELS.get(str(ctx.task.properties.get("log_level") or "TRACE"), 0)
    if LEVELS[level] < floor:
        return []
    stamp = workflow.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"
    lines = []
    for message in messages[:MAX_LINES]:
        text = message if isinstance(message, str) else str(message)
        if len(text) > LINE_CHARS:
            text = f"{text[:LINE_CHARS]}… ({len(text)} characters, cut)"
        lines.append({"timestamp": stamp, "level": level, "message": text})
    if len(messages) > MAX_LINES:
        lines.append({"timestamp": stamp, "level": "WARN", "message": f"… {len(messages) - MAX_LINES} messages left out"})
    return lines


async def evaluate(ctx: TaskContext) -> ChildResult:
    message = ctx.render(ctx.task.properties["message"])
    level = ctx.task.properties.get("level") or "INFO"
    messages = message if isinstance(message, list) else [message]
    if not workflow.patched(LOG_LINES_PATCH):
        for line in messages:
            workflow.logger.log(LEVELS[level], "[%s] %s", ctx.task.id, line)
        return ChildResult(State.SUCCESS, {})
    for line in messages:
        workflow.logger.debug("[%s] %s", ctx.task.id, line)  # the run's log has it; the worker's only at DEBUG
    return ChildResult(State.SUCCESS, {"logs": log_lines(ctx, messages, level)})


TYPE = TaskType(
    "log",
    TaskKind.PURE,
    ("io.kestra.plugin.core.log.Log", "io.kestra.plugin.core.debug.Echo", "io.kestra.core.tasks.log.Log",
     "io.kestra.core.tasks.debugs.Echo"),
    {
        "message": PropertySpec("any", required=True, aliases=("format",)),  # Echo (deprecated) says `format`
        "level": PropertySpec("choice", choices=tuple(LEVELS)),
    },
    "logs the rendered `message`",
    evaluate=evaluate,
)
