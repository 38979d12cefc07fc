"""A worker's own log: one INFO line per task run, a size-bounded file.

A task's output belongs to the task's log (`CommandsResult.log_lines`, read by `tflow logs` and the
web view), not to the worker's: the activities copy output lines to the worker's log at DEBUG only.
What the worker logs at INFO per task run is the single line :class:`TaskRunLog` writes when the
run ends (its state and duration); a log file rotates (RotatingFileHandler) so it stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import time
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.api import COMMANDS_ACTIVITY, DOWNLOAD_ACTIVITY, HTTP_ACTIVITY, SCRIPT_ACTIVITY

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 10 * 1024 * 1024
"""A worker log file is rotated when it would grow past this (`--log-max-bytes`)."""
LOG_BACKUPS = 5
"""Rotated files kept beside it: `worker.log.1` ... `worker.log.5` (`--log-backups`)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TASK_RUN_ACTIVITIES = frozenset({COMMANDS_ACTIVITY, SCRIPT_ACTIVITY, HTTP_ACTIVITY, DOWNLOAD_ACTIVITY})
"""Activities that are task runs (the others are the interpreter's own: their line is DEBUG)."""

log = logging.getLogger("tflow.worker")


def configure_logging(log_file: Path | None = None, *, level: int | str = "INFO", max_bytes: int = LOG_MAX_BYTES,
                      backups: int = LOG_BACKUPS) -> None:
    """Send this process's logging to `log_file` (rotated at `max_bytes`, `backups` old files kept;
    max_bytes 0 never rotates) or, without one, to stderr; at `level` (DEBUG adds task output)."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler()
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups,
                                                       encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)


def _request_field(request: Any, name: str) -> str:
    value = request.get(name) if isinstance(request, dict) else getattr(request, name, None)
    return str(value) if value else "?"


def _state_of(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    if isinstance(error, ApplicationError) and error.type == "Timeout":
        return "FAILED (timed out)"
    return "FAILED"


class _TaskRunLogInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        request = input.args[0] if input.args else None
        log.debug("task %s %s started (attempt %d, workflow %s)", _request_field(request, "task_id"),
                  info.activity_type, info.attempt, info.workflow_id)
        started = time.monotonic()
        state = "FAILED"
        try:
            result = await self.next.execute_activity(input)
            state = "SUCCESS"
            return result
        except BaseException as error:
            state = _state_of(error)
            raise
        finally:
            level = logging.INFO if info.activity_type in TASK_RUN_ACTIVITIES else logging.DEBUG
            log.log(level, "task %s %s: %s in %.2fs (task run %s, attempt %d, workflow %s)",
                    _request_field(request, "task_id"), info.activity_type, state, time.monotonic() - started,
                    _request_field(request, "task_run_id"), info.attempt, info.workflow_id)


class TaskRunLog(Interceptor):
    """Logs one line per activity execution when it ends: INFO for task runs (see the module docstring)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TaskRunLogInbound(next)
