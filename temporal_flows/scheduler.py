"""THE group scheduler: every flowable (sequential, parallel, DAG, for-each) runs through `run_group`.

A group is children plus a dependency relation, a concurrency limit and a strategy (SPEC §3.4).
The scheduler starts ready children in declaration order up to the limit, reacts to each ending
child by its strategy, cancels what must stop, waits for cancellations to settle, and decides the
group's state. It runs inside the workflow, so it waits with `workflow.wait` (deterministic).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from temporalio import workflow

from temporal_flows.ledger import State, worst
from temporal_flows.model import Task


class Strategy:
    WAIT_ALL = "wait_all"
    FAIL_FAST = "fail_fast"
    BEST_EFFORT = "best_effort"
    RACE = "race"


@dataclass(frozen=True)
class ChildResult:
    """How one child ended, as its group sees it (its own rules, e.g. allowFailure, applied)."""

    state: State
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass
class Group:
    children: list[Task]
    depends_on: dict[str, list[str]] = field(default_factory=dict)
    """child id → ids that must have succeeded before it starts."""
    limit: int = 0
    """At most this many children at once; 0 = unlimited."""
    strategy: str = Strategy.WAIT_ALL
    stop_on_failure: bool = False
    """Start no new child after a failure (sequential groups, DAGs, for-each)."""
    min_success: int = 1
    timeout_s: float | None = None

    @staticmethod
    def chain(children: list[Task], **options: Any) -> Group:
        """Children one after the other: each depends on the previous one."""
        depends = {child.id: [previous.id] for previous, child in zip(children, children[1:])}
        return Group(children, depends, limit=1, stop_on_failure=True, **options)


@dataclass
class GroupResult:
    state: State
    results: dict[str, ChildResult]
    """Per child that started, in declaration order."""
    winner: str | None = None
    error: dict[str, Any] | None = None

    @property
    def output(self) -> Any:
        """A race's winner output, else child id → output (None where it did not succeed)."""
        if self.winner is not None:
            return self.results[self.winner].output
        return {child_id: result.output if result.state.succeeded else None for child_id, result in self.results.items()}


RunChild = Callable[[Task], Awaitable[ChildResult]]


class _GroupRun:
    """The mutable state of one group while it runs."""

    def __init__(self, group: Group, run_child: RunChild):
        self.group = group
        self.run_child = run_child
        self.results: dict[str, ChildResult] = {}
        self.running: dict[str, asyncio.Task[ChildResult]] = {}
        self.not_started = list(group.children)
        self.stopping = False
        self.timed_out = False
        self.winner: str | None = None

    async def run(self) -> GroupResult:
        timer = asyncio.create_task(workflow.sleep(self.group.timeout_s)) if self.group.timeout_s else None
        try:
            while True:
                if not self.stopping:
                    self._start_ready_children()
                if not self.running:
                    break
                waitables: list[asyncio.Task[Any]] = list(self.running.values())
                if timer is not None:
                    waitables.append(timer)
                await workflow.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
                self._collect_finished()
                if timer is not None and timer.done() and self.running:
                    self.timed_out = True
                    await self._stop_running()
        except asyncio.CancelledError:
            await self._stop_running()
            raise
        finally:
            if timer is not None and not timer.done():
                timer.cancel()
        return self._decide()

    def _start_ready_children(self) -> None:
        limit = self.group.limit or len(self.group.children)
        for child in list(self.not_started):
            if len(self.running) >= limit:
                return
            if not self._dependencies_met(child):
                continue
            self.not_started.remove(child)
            self.running[child.id] = asyncio.create_task(self.run_child(child))

    def _dependencies_met(self, child: Task) -> bool:
        needed = self.group.depends_on.get(child.id, [])
        return all(dep in self.results and self.results[dep].state.succeeded for dep in needed)

    def _collect_finished(self) -> None:
        for child in self.group.children:
            handle = self.running.get(child.id)
            if handle is None or not handle.done():
                continue
            del self.running[child.id]
            result = _result_of(handle)
            self.results[child.id] = result
            self._react(child.id, result)

    def _react(self, child_id: str, result: ChildResult) -> None:
        strategy = self.group.strategy
        if strategy == Strategy.RACE:
            if result.state.succeeded and self.winner is None:
                self.winner = child_id
                self.stopping = True
                self._cancel_running()
            return
        if result.state.succeeded:
            return
        if strategy == Strategy.FAIL_FAST:
            self.stopping = True
            self._cancel_running()
        elif self.group.stop_on_failure:
            self.stopping = True

    def _cancel_running(self) -> None:
        for handle in self.running.values():
            handle.cancel()

    async def _stop_running(self) -> None:
        """Cancel running children and wait until each acknowledged, so nothing overlaps what follows."""
        self.stopping = True
        self._cancel_running()
        while self.running:
            await workflow.wait(list(self.running.values()), return_when=asyncio.ALL_COMPLETED)
            self._collect_finished()

    def _decide(self) -> GroupResult:
        results = {child.id: self.results[child.id] for child in self.group.children if child.id in self.results}
        failed = [(child_id, result) for child_id, result in results.items() if not result.state.succeeded]
        first_error = _first_error(failed)
        if self.timed_out:
            error = {"type": "Timeout", "message": f"the group timed out after {self.group.timeout_s:g} s", "task_id": None}
            return GroupResult(State.FAILED, results, error=error)
        strategy = self.group.strategy
        if strategy == Strategy.RACE:
            if self.winner is not None:
                return GroupResult(State.SUCCESS, results, winner=self.winner)
            return GroupResult(State.FAILED, results, error=first_error or _nothing_succeeded())
        if strategy == Strategy.BEST_EFFORT:
            succeeded = len(results) - len(failed)
            if not failed:
                return GroupResult(worst([result.state for result in results.values()]), results)
            state = State.WARNING if succeeded >= self.group.min_success else State.FAILED
            return GroupResult(state, results, error=first_error)
        states = [State.FAILED if result.state is State.CANCELLED else result.state for result in results.values()]
        state = worst(states)
        return GroupResult(state, results, error=first_error if state is State.FAILED else None)


def _result_of(handle: asyncio.Task[ChildResult]) -> ChildResult:
    if handle.cancelled():
        return ChildResult(State.CANCELLED, error={"type": "Cancelled", "message": "cancelled before it started"})
    return handle.result()


def _first_error(failed: list[tuple[str, ChildResult]]) -> dict[str, Any] | None:
    for child_id, result in failed:
        if result.state is State.FAILED:
            error = dict(result.error or {"type": "Failed", "message": "failed"})
            error.setdefault("task_id", child_id)
            return error
    return None


def _nothing_succeeded() -> dict[str, Any]:
    return {"type": "NoWinner", "message": "no child of the race succeeded", "task_id": None}


async def run_group(group: Group, run_child: RunChild) -> GroupResult:
    """Run `group`'s children with `run_child` and decide the group's result (see module doc)."""
    return await _GroupRun(group, run_child).run()
