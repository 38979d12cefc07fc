"""THE group scheduler: every flowable (sequential, parallel, DAG, for-each) runs through `run_group`.

A group is children plus a dependency relation, a concurrency limit and a strategy (SPEC §3.4).
The scheduler starts ready children in declaration order up to the limit, reacts to each ending
child by its strategy, cancels what must stop, waits for cancellations to settle, and decides the
group's state. It runs inside the workflow, so it waits on workflow futures (deterministic).

Work per child event is constant (plus a heap operation): children that end wake the group
through a done-callback instead of a rescan of every child, and ready children wait in a heap
keyed by declaration order.
"""

from __future__ import annotations

import asyncio
import heapq
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
    tolerated: bool = False
    """A failure that `allowFailure` turned into WARNING: it stands in nobody's way, but it is not a
    success (it cannot win a race or count toward `min_success`)."""
    winner: str | None = None
    """For a race group: the child that won."""

    @property
    def really_succeeded(self) -> bool:
        """Did the child do its job? A SKIPPED child or a tolerated failure did not."""
        return self.state in (State.SUCCESS, State.WARNING) and not self.tolerated


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
    id: str | None = None
    """The flowable task this group belongs to (None for the flow's top level): errors name it."""

    @staticmethod
    def chain(children: list[Task], **options: Any) -> Group:
        """Children one after the other: each depends on the previous one. Ordering is not a
        concurrency limit, so a chain sets none (a parallel inside it keeps its own)."""
        depends = {child.id: [previous.id] for previous, child in zip(children, children[1:])}
        return Group(children, depends, stop_on_failure=True, **options)


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
        self.order = {child.id: index for index, child in enumerate(group.children)}
        self.results: dict[str, ChildResult] = {}
        self.running: dict[str, asyncio.Task[ChildResult]] = {}
        self.finished: list[str] = []
        """Children whose task ended since the group last looked (filled by done-callbacks)."""
        self.wakeup: asyncio.Future[None] | None = None
        self.waiting_on = {child.id: len(group.depends_on.get(child.id, ())) for child in group.children}
        self.dependents: dict[str, list[str]] = {}
        for child_id, needed in group.depends_on.items():
            for dependency in needed:
                self.dependents.setdefault(dependency, []).append(child_id)
        self.ready = [index for index, child in enumerate(group.children) if self.waiting_on[child.id] == 0]
        heapq.heapify(self.ready)
        self.stopping = False
        self.timed_out = False
        self.winner: str | None = None

    async def run(self) -> GroupResult:
        timer = asyncio.create_task(workflow.sleep(self.group.timeout_s)) if self.group.timeout_s else None
        if timer is not None:
            timer.add_done_callback(lambda _: self._wake())
        try:
            while True:
                if not self.stopping:
                    self._start_ready_children()
                if not self.running and not self.finished:
                    break
                await self._next_event()
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

    def _wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    async def _next_event(self) -> None:
        """Wait until a child ends or the group's timer fires."""
        if self.finished:
            return
        self.wakeup = asyncio.get_running_loop().create_future()
        try:
            await self.wakeup
        finally:
            self.wakeup = None

    def _start_ready_children(self) -> None:
        limit = self.group.limit or len(self.group.children)
        while self.ready and len(self.running) < limit:
            child = self.group.children[heapq.heappop(self.ready)]
            handle = asyncio.create_task(self.run_child(child))
            handle.add_done_callback(lambda _, child_id=child.id: self._ended(child_id))
            self.running[child.id] = handle

    def _ended(self, child_id: str) -> None:
        self.finished.append(child_id)
        self._wake()

    def _collect_finished(self) -> None:
        """Take the children that ended, in declaration order (so race ties go to the first)."""
        ended, self.finished = sorted(self.finished, key=self.order.__getitem__), []
        for child_id in ended:
            result = _result_of(self.running.pop(child_id))
            self.results[child_id] = result
            self._react(child_id, result)
            if result.state.succeeded:
                self._release_dependents(child_id)

    def _release_dependents(self, child_id: str) -> None:
        for dependent in self.dependents.get(child_id, ()):
            self.waiting_on[dependent] -= 1
            if self.waiting_on[dependent] == 0:
                heapq.heappush(self.ready, self.order[dependent])

    def _react(self, child_id: str, result: ChildResult) -> None:
        strategy = self.group.strategy
        if strategy == Strategy.RACE:
            if result.really_succeeded and self.winner is None:
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
        """Cancel running children and wait until each settled, so nothing overlaps what follows.

        Each child bounds its own wait for acknowledgement (see the interpreter), so this ends.
        """
        self.stopping = True
        self._cancel_running()
        while self.running:
            await self._next_event()
            self._collect_finished()

    def _decide(self) -> GroupResult:
        results = {child.id: self.results[child.id] for child in self.group.children if child.id in self.results}
        failed = [(child_id, result) for child_id, result in results.items() if not result.state.succeeded]
        first_error = _first_error(failed)
        if self.timed_out:
            where = f"`{self.group.id}` " if self.group.id else ""
            error = {
                "type": "Timeout",
                "message": f"the group {where}timed out after {self.group.timeout_s:g} s",
                "task_id": self.group.id,
            }
            return GroupResult(State.FAILED, results, error=error)
        strategy = self.group.strategy
        if strategy == Strategy.RACE:
            if self.winner is not None:
                return GroupResult(State.SUCCESS, results, winner=self.winner)
            return GroupResult(State.FAILED, results, error=first_error or _nothing_succeeded(self.group.id))
        if strategy == Strategy.BEST_EFFORT:
            if not failed:
                return GroupResult(worst([result.state for result in results.values()]), results)
            succeeded = sum(1 for result in results.values() if result.really_succeeded)
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


def _nothing_succeeded(group_id: str | None) -> dict[str, Any]:
    return {"type": "NoWinner", "message": "no child of the race succeeded", "task_id": group_id}


async def run_group(group: Group, run_child: RunChild) -> GroupResult:
    """Run `group`'s children with `run_child` and decide the group's result (see module doc)."""
    return await _GroupRun(group, run_child).run()
