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
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

from temporalio import workflow

from temporal_flows.model.flow import OnFailure, Strategy
from temporal_flows.model.runs import State, worst
from temporal_flows.tasks.plan import Child, ChildResult, Group, GroupResult, Jump


PATCH_CANCEL_CHILDREN_ONCE = "cancel-children-once"
"""Before it, every further failure in a stopping fail-fast group cancelled the running children
again, which cut short their wait for the activity's acknowledgement."""


@dataclass
class GroupProgress:
    """What a running group has decided so far, as plain data (no handles): the results of the
    children that ended, which are waiting and on how many, and what the strategy concluded."""

    results: dict[str, ChildResult] = field(default_factory=dict)
    waiting_on: dict[str, int] = field(default_factory=dict)
    ready: list[int] = field(default_factory=list)
    """Heap of declaration indexes of children whose dependencies are met."""
    bypassed: set[str] = field(default_factory=set)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopping: bool = False
    timed_out: bool = False
    winner: str | None = None


RunChild = Callable[[Child, "dict[str, Any] | None"], Awaitable[ChildResult]]
SkipChild = Callable[[Child], ChildResult]
"""Record a child that will never run (a descendant of a failed `skip` child) and say how it ended."""


def _skipped(child: Child) -> ChildResult:
    return ChildResult(State.SKIPPED)


class _GroupRun:
    """One group while it runs: its plain progress plus the handles of running children."""

    def __init__(self, group: Group, run_child: RunChild, skip_child: SkipChild = _skipped):
        self.group = group
        self.run_child = run_child
        self.skip_child = skip_child
        self.order = {child.key: index for index, child in enumerate(group.children)}
        self.running: dict[str, asyncio.Task[ChildResult]] = {}
        self.finished: list[str] = []
        """Children whose task ended since the group last looked (filled by done-callbacks)."""
        self.wakeup: asyncio.Future[None] | None = None
        self.dependents: dict[str, list[str]] = {}
        for key, needed in group.depends_on.items():
            for dependency in needed:
                self.dependents.setdefault(dependency, []).append(key)
        waiting_on = {child.key: len(group.depends_on.get(child.key, ())) for child in group.children}
        self.progress = GroupProgress(
            waiting_on=waiting_on,
            ready=[index for index, child in enumerate(group.children) if waiting_on[child.key] == 0],
            bypassed=set(group.only_when_jumped),
        )
        heapq.heapify(self.progress.ready)

    async def run(self) -> GroupResult:
        timer = asyncio.create_task(workflow.sleep(self.group.timeout_s)) if self.group.timeout_s else None
        if timer is not None:
            timer.add_done_callback(lambda _: self._wake())
        try:
            while True:
                if not self.progress.stopping:
                    self._start_ready_children()
                if not self.running and not self.finished:
                    break
                await self._next_event()
                self._collect_finished()
                if timer is not None and timer.done() and self.running:
                    self.progress.timed_out = True
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
        progress = self.progress
        limit = self.group.limit or len(self.group.children)
        while progress.ready and len(self.running) < limit:
            child = self.group.children[heapq.heappop(progress.ready)]
            if child.key in progress.bypassed:
                self._release_dependents(child.key)  # not run: control passes through it
                continue
            handle = asyncio.create_task(self.run_child(child, progress.inputs.pop(child.key, None)))
            handle.add_done_callback(lambda _, key=child.key: self._ended(key))
            self.running[child.key] = handle

    def _ended(self, key: str) -> None:
        self.finished.append(key)
        self._wake()

    def _collect_finished(self) -> None:
        """Take the children that ended, in declaration order (so race ties go to the first)."""
        ended, self.finished = sorted(self.finished, key=self.order.__getitem__), []
        for key in ended:
            result = _result_of(self.running.pop(key))
            policy = self.group.on_failure.get(key)
            if policy is not None and result.state is State.FAILED and not result.handled:
                result = replace(result, handled=True)
            self.progress.results[key] = result
            self._react(key, result)
            if policy == OnFailure.SKIP and result.state is State.FAILED:
                self._skip_dependents(key)
            elif result.group_state.succeeded:
                if result.jump is not None:
                    self._jump(key, result.jump)
                self._release_dependents(key)

    def _skip_dependents(self, key: str) -> None:
        """Every child that (transitively) depends on `key` will never run: SKIPPED now."""
        pending = list(self.dependents.get(key, ()))
        while pending:
            dependent = pending.pop(0)
            if dependent in self.progress.results or dependent in self.running:
                continue
            child = self.group.children[self.order[dependent]]
            self.progress.results[dependent] = self.skip_child(child)
            pending.extend(self.dependents.get(dependent, ()))

    def _release_dependents(self, key: str) -> None:
        progress = self.progress
        for dependent in self.dependents.get(key, ()):
            progress.waiting_on[dependent] -= 1
            if progress.waiting_on[dependent] == 0:
                heapq.heappush(progress.ready, self.order[dependent])

    def _jump(self, source: str, jump: Jump) -> None:
        """Children between `source` and the target are passed through; the target runs with the input."""
        first, target = self.order[source] + 1, self.order[jump.target]
        for child in self.group.children[first:target]:
            self.progress.bypassed.add(child.key)
        self.progress.bypassed.discard(jump.target)
        self.progress.inputs[jump.target] = jump.input

    def _react(self, key: str, result: ChildResult) -> None:
        progress = self.progress
        strategy = self.group.strategy
        if strategy == Strategy.RACE:
            if result.really_succeeded and progress.winner is None:
                progress.winner = key
                progress.stopping = True
                self._cancel_running()
            return
        if result.group_state.succeeded:
            return
        if strategy == Strategy.FAIL_FAST:
            if progress.stopping and workflow.patched(PATCH_CANCEL_CHILDREN_ONCE):
                return  # already cancelling: a second cancel would cut their acknowledgement short
            progress.stopping = True
            self._cancel_running()
        elif self.group.stop_on_failure:
            progress.stopping = True

    def _cancel_running(self) -> None:
        for handle in self.running.values():
            handle.cancel()

    async def _stop_running(self) -> None:
        """Cancel running children and wait until each settled, so nothing overlaps what follows.

        Each child bounds its own wait for acknowledgement (see the interpreter), so this ends.
        """
        self.progress.stopping = True
        self._cancel_running()
        while self.running:
            await self._next_event()
            self._collect_finished()

    def _decide(self) -> GroupResult:
        progress = self.progress
        results = {child.key: progress.results[child.key] for child in self.group.children if child.key in progress.results}
        failed = [(key, result) for key, result in results.items() if not result.group_state.succeeded]
        first_error = _first_error(failed)
        if progress.timed_out:
            where = f"`{self.group.id}` " if self.group.id else ""
            error = {
                "type": "Timeout",
                "message": f"the group {where}timed out after {self.group.timeout_s:g} s",
                "task_id": self.group.id,
            }
            return GroupResult(State.FAILED, results, error=error)
        strategy = self.group.strategy
        if strategy == Strategy.RACE:
            if progress.winner is not None:
                return GroupResult(State.SUCCESS, results, winner=progress.winner)
            return GroupResult(State.FAILED, results, error=first_error or _nothing_succeeded(self.group.id))
        if strategy == Strategy.BEST_EFFORT:
            succeeded = sum(1 for result in results.values() if result.really_succeeded)
            tolerated = [(key, result) for key, result in results.items() if result.tolerated]
            if not failed and (not tolerated or succeeded >= self.group.min_success):
                return GroupResult(worst([result.group_state for result in results.values()]), results)
            if not failed:  # only tolerated failures, and too few real successes
                error = dict(tolerated[0][1].error or {"type": "Failed", "message": "failed"})
                error.setdefault("task_id", tolerated[0][0])
                return GroupResult(State.FAILED, results, error=error)
            state = State.WARNING if succeeded >= self.group.min_success else State.FAILED
            return GroupResult(state, results, error=first_error)
        states = [State.FAILED if result.state is State.CANCELLED else result.group_state for result in results.values()]
        state = worst(states)
        return GroupResult(state, results, error=first_error if state is State.FAILED else None)


def _result_of(handle: asyncio.Task[ChildResult]) -> ChildResult:
    if handle.cancelled():
        return ChildResult(State.CANCELLED, error={"type": "Cancelled", "message": "cancelled before it started"})
    return handle.result()


def _first_error(failed: list[tuple[str, ChildResult]]) -> dict[str, Any] | None:
    for key, result in failed:
        if result.state is State.FAILED:
            error = dict(result.error or {"type": "Failed", "message": "failed"})
            error.setdefault("task_id", key)
            return error
    return None


def _nothing_succeeded(group_id: str | None) -> dict[str, Any]:
    return {"type": "NoWinner", "message": "no child of the race succeeded", "task_id": group_id}


async def run_group(group: Group, run_child: RunChild, skip_child: SkipChild = _skipped) -> GroupResult:
    """Run `group`'s children with `run_child` and decide the group's result (see module doc);
    `skip_child` records the children a failed `skip` child keeps from running."""
    return await _GroupRun(group, run_child, skip_child).run()
