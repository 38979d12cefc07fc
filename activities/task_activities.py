"""The process-running activities of one worker, with that worker's task-runner setting.

The workflow passes each task's declared runner; the worker decides per task run (SPEC §4): with
`tflow worker --task-runner process` a Docker task runs as a local process here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio import activity

from activities.api import COMMANDS_ACTIVITY, SCRIPT_ACTIVITY, CommandsRequest, ScriptRequest
from activities.commands import run_commands
from activities.script import run_script
from activities.task_runners import WORKER_TASK_RUNNERS, effective_runner
from activities.wire import from_wire, to_wire


class ProcessActivities:
    """`commands` and `script` as this worker runs them (`task_runner`: auto | process)."""

    def __init__(self, task_runner: str = "auto") -> None:
        if task_runner not in WORKER_TASK_RUNNERS:
            raise ValueError(f"task runner {task_runner!r}: expected one of {', '.join(WORKER_TASK_RUNNERS)}")
        self.task_runner = task_runner

    # Payloads travel as plain JSON objects here (see activities.wire): the same wire format as the
    # CommandsRequest/ScriptRequest → CommandsResult dataclasses, without the SDK's costly conversion.
    @activity.defn(name=COMMANDS_ACTIVITY)
    async def commands(self, request: dict[str, Any]) -> dict[str, Any]:
        decoded = from_wire(CommandsRequest, request)
        runner = effective_runner(decoded.task_runner, self.task_runner)
        return to_wire(await run_commands(dataclasses.replace(decoded, task_runner=runner)))

    @activity.defn(name=SCRIPT_ACTIVITY)
    async def script(self, request: dict[str, Any]) -> dict[str, Any]:
        decoded = from_wire(ScriptRequest, request)
        runner = effective_runner(decoded.task_runner, self.task_runner)
        return to_wire(await run_script(dataclasses.replace(decoded, task_runner=runner)))

    def activities(self) -> list[Any]:
        return [self.commands, self.script]
