"""`pause`: waits durably until `tflow resume`, its `pauseDuration`, or its `timeout` (Kestra's Pause).

- `pauseDuration` (older Kestra: `delay`): the pause resumes itself when it ends; `behavior` says
  how: RESUME (SUCCESS, default), WARN (WARNING), FAIL (FAILED), CANCEL (CANCELLED).
- `timeout`: not resumed by then → FAILED (error type `Timeout`); the earlier of the two decides.
- Neither: it waits for `tflow resume` however long that takes (no timer at all).
- `onResume`: inputs a resume may give, declared like a flow's `inputs`; their values are the
  task's outputs `onResume.<name>` (defaults when the duration resumed it).
- `tasks` (older Kestra): children run in order after the pause, as a sequential would.
The task run is PAUSED while it waits; the summary's `waiting_for` lists it (`temporal_flows.engine.pauses`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import PauseEnd, State
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, flowable_properties
from temporal_flows.tasks.plan import ChildResult, Group, GroupResult

BEHAVIORS = ("RESUME", "WARN", "FAIL", "CANCEL")
_ELAPSED_STATES = {"RESUME": State.SUCCESS, "WARN": State.WARNING, "FAIL": State.FAILED, "CANCEL": State.CANCELLED}


async def plan(ctx: TaskContext) -> Plan:
    task = ctx.task
    assert ctx.pauses is not None, "the interpreter gives every task the run's pauses"
    try:
        duration = _seconds(ctx.render(task.properties.get("pause_duration")))
    except ValueError as error:
        return Plan(result=ChildResult(State.FAILED, error={"type": "InvalidDuration", "message": f"`pauseDuration`: {error}"}))
    on_resume: list[dict[str, Any]] = task.properties.get("on_resume") or []
    end, given = await ctx.pauses.wait(ctx.task_run, on_resume, duration, task.timeout_s)
    if end is PauseEnd.TIMED_OUT:
        message = f"not resumed within its timeout of {task.timeout_s:g} s"
        return Plan(result=ChildResult(State.FAILED, error={"type": "Timeout", "message": message}))
    outputs = _outputs(ctx, on_resume, given)
    state = State.SUCCESS if end is PauseEnd.RESUMED else _ELAPSED_STATES[_behavior(ctx)]
    if state in (State.FAILED, State.CANCELLED):
        message = f"paused {duration:g} s without a resume (behavior {_behavior(ctx)})"
        return Plan(outputs=outputs, result=ChildResult(state, error={"type": "PauseElapsed", "message": message}))
    if not task.tasks:
        return Plan(outputs=outputs, result=ChildResult(state))
    return Plan(Group.chain(task.tasks, id=task.id), ctx.scope.limit, outputs=outputs)


def conclude(ctx: TaskContext, outcome: GroupResult, result: ChildResult) -> ChildResult:
    """Behavior WARN after the duration: children that succeeded leave the pause WARNING (Kestra)."""
    assert ctx.pauses is not None
    elapsed = ctx.pauses.ended(ctx.task_run.id) is PauseEnd.ELAPSED
    if elapsed and result.state is State.SUCCESS and _behavior(ctx) == "WARN":
        return replace(result, state=State.WARNING)
    return result


def _seconds(rendered: Any) -> float | None:
    return None if rendered is None else parse_duration(rendered)


def _behavior(ctx: TaskContext) -> str:
    return str(ctx.task.properties.get("behavior") or "RESUME").upper()


def _outputs(ctx: TaskContext, on_resume: list[dict[str, Any]], given: dict[str, Any] | None) -> dict[str, Any] | None:
    """`onResume.<name>`: the resume's inputs; after the duration, their defaults where they resolve."""
    if not on_resume:
        return None
    assert ctx.pauses is not None
    if given is None:
        given = ctx.pauses.defaults(on_resume)
    return None if given is None else {"onResume": given}


TYPE = TaskType(
    "pause",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause"),
    flowable_properties(
        pause_duration=PropertySpec("duration", aliases=("delay",), dynamic=True, description="it resumes itself then"),
        behavior=PropertySpec("choice", choices=BEHAVIORS, description="what the end of `pauseDuration` does"),
        on_resume=PropertySpec("inputs", description="inputs a resume may give, declared like a flow's `inputs`"),
        tasks=PropertySpec("tasks", description="run in order after the pause (older Kestra)"),
    ),
    "waits for `tflow resume`, its `pauseDuration`, or its `timeout` (FAILED)",
    plan=plan,
    conclude=conclude,
)
