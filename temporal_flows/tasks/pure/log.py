"""`log`: logs the rendered `message` (or each of a list of messages) through the workflow logger.

Kestra's deprecated `Echo` is the same task with `format` for `message`."""

from __future__ import annotations

import logging

from temporalio import workflow

from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.plan import ChildResult

LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}


async def evaluate(ctx: TaskContext) -> ChildResult:
    message = ctx.render(ctx.task.properties["message"])
    level = LEVELS[ctx.task.properties.get("level", "INFO")]
    for line in message if isinstance(message, list) else [message]:
        workflow.logger.log(level, "[%s] %s", ctx.task.id, line)
    return ChildResult(State.SUCCESS, {})


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
