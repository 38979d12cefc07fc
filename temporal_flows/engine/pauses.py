"""The paused task runs of one run (SPEC §3.2 `pause`, §8 `tflow resume`) and how a resume reaches them.

Workflow state, like the ledger: a `pause` task waits here durably (`workflow.wait_condition`, with
a timer when it has a duration or a timeout), so a worker restart loses nothing; the workflow's
`resume` update checks a request against what waits (in its validator, so a refused resume is
told at once and leaves no trace in the history) and wakes the chosen pauses. Everything here is
deterministic: it runs inside the workflow.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Collection

from temporalio import workflow

from temporal_flows.language.inputs import InputError, resolve_inputs
from temporal_flows.model.runs import PauseEnd, State, TaskRun, timestamp


class ResumeRefused(ValueError):
    """A resume that cannot apply (nothing paused, no such task, bad inputs); the message says why."""


@dataclass
class PausedTask:
    """One task run waiting for a resume."""

    task_run: TaskRun
    on_resume: list[dict[str, Any]]
    """The inputs a resume may give (declared like a flow's `inputs`)."""
    resumes_at: datetime | None = None
    """When its duration ends (it resumes itself), if it has one."""
    fails_at: datetime | None = None
    """When its timeout ends (it fails), if it has one."""
    given: dict[str, Any] | None = None
    """The resolved resume inputs, once resumed."""

    def describe(self) -> dict[str, Any]:
        """What `tflow status` shows of it (the summary's `waiting_for`)."""
        return {
            "task_id": self.task_run.task_id,
            "task_run_id": self.task_run.id,
            "value": self.task_run.value,
            "since": self.task_run.started_at,
            "resumes_at": timestamp(self.resumes_at) if self.resumes_at else None,
            "fails_at": timestamp(self.fails_at) if self.fails_at else None,
            "on_resume": [declaration["id"] for declaration in self.on_resume],
        }


class Pauses:
    """Task runs paused now, in the order they paused, and how each pause ended."""

    def __init__(self) -> None:
        self._waiting: list[PausedTask] = []
        self._ended: dict[str, PauseEnd] = {}

    async def wait(
        self, task_run: TaskRun, on_resume: list[dict[str, Any]], duration_s: float | None, timeout_s: float | None
    ) -> tuple[PauseEnd, dict[str, Any] | None]:
        """Wait until resumed, or until the duration or the timeout ends (the earlier, on one
        durable timer); the task run is PAUSED meanwhile. Returns how it ended and the resume's inputs."""
        now = workflow.now()
        paused = PausedTask(
            task_run,
            on_resume,
            resumes_at=now + timedelta(seconds=duration_s) if duration_s is not None else None,
            fails_at=now + timedelta(seconds=timeout_s) if timeout_s is not None else None,
        )
        limits = [seconds for seconds in (duration_s, timeout_s) if seconds is not None]
        self._waiting.append(paused)
        task_run.state = State.PAUSED
        try:
            await workflow.wait_condition(
                lambda: paused.given is not None,
                timeout=min(limits) if limits else None,
                timeout_summary=f"pause {task_run.task_id}",
            )
            end = PauseEnd.RESUMED
        except asyncio.TimeoutError:
            elapsed = duration_s is not None and (timeout_s is None or duration_s <= timeout_s)
            end = PauseEnd.ELAPSED if elapsed else PauseEnd.TIMED_OUT
        finally:
            self._waiting.remove(paused)
        task_run.state = State.RUNNING
        self._ended[task_run.id] = end
        return end, paused.given

    def ended(self, task_run_id: str) -> PauseEnd | None:
        return self._ended.get(task_run_id)

    @staticmethod
    def defaults(on_resume: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The `onResume` inputs' defaults, as a resume giving nothing would resolve them; None when
        one is required without a default (nothing to show)."""
        try:
            return resolve_resume_inputs(on_resume, {})
        except ResumeRefused:
            return None

    def waiting_for(self) -> list[dict[str, Any]]:
        return [paused.describe() for paused in self._waiting]

    def check(
        self, task: str | None, given: dict[str, Any], known_task_ids: Collection[str] = ()
    ) -> list[tuple[PausedTask, dict[str, Any]]]:
        """The pauses a resume of `task` (a task id, a task run id, or None for every pause) wakes,
        each with its resolved inputs; ResumeRefused says why none can. Changes nothing."""
        chosen = self._select(task, known_task_ids)
        declared_names = {declaration["id"] for paused in chosen for declaration in paused.on_resume}
        unknown = sorted(set(given) - declared_names)
        if unknown:
            expected = ", ".join(f"`{name}`" for name in sorted(declared_names)) or "none"
            raise ResumeRefused(f"unknown resume input(s) {', '.join(f'`{name}`' for name in unknown)} (the pause declares {expected} in `onResume`)")
        resolved = []
        for paused in chosen:
            names = {declaration["id"] for declaration in paused.on_resume}
            try:
                values = resolve_resume_inputs(paused.on_resume, {k: v for k, v in given.items() if k in names})
            except ResumeRefused as refused:
                raise ResumeRefused(f"task `{paused.task_run.task_id}`: {refused}") from None
            resolved.append((paused, values))
        return resolved

    def resume(self, task: str | None, given: dict[str, Any], known_task_ids: Collection[str] = ()) -> list[dict[str, Any]]:
        """Wake the pauses `check` chooses; what was resumed, for the caller."""
        resumed = []
        for paused, values in self.check(task, given, known_task_ids):
            paused.given = values
            resumed.append({**paused.describe(), "inputs": values})
        return resumed

    def _select(self, task: str | None, known_task_ids: Collection[str]) -> list[PausedTask]:
        if not self._waiting:
            raise ResumeRefused("nothing is paused in this run")
        if task is None:
            return list(self._waiting)
        chosen = [paused for paused in self._waiting if task in (paused.task_run.task_id, paused.task_run.id)]
        if chosen:
            return chosen
        paused_now = ", ".join(sorted({f"`{paused.task_run.task_id}`" for paused in self._waiting}))
        if known_task_ids and task not in known_task_ids:
            raise ResumeRefused(f"the flow has no task `{task}` (paused now: {paused_now})")
        raise ResumeRefused(f"task `{task}` is not paused (paused now: {paused_now})")


def resolve_resume_inputs(declared: list[dict[str, Any]], given: dict[str, Any]) -> dict[str, Any]:
    """The values of a pause's `onResume` inputs, checked and coerced as a flow's inputs are,
    defaults filled in; ResumeRefused names every problem."""
    try:
        return resolve_inputs(declared, given)
    except InputError as error:
        raise ResumeRefused("; ".join(error.messages)) from None
