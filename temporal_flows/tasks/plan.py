"""What a flowable's hook hands the scheduler, and what it gets back: a `Group` of `Child`ren
(with dependencies, a limit and a strategy), each ending as a `ChildResult`, the whole as a
`GroupResult`. Pure data: the engine's scheduler runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporal_flows.model.flow import Strategy, Task
from temporal_flows.model.runs import State


@dataclass(frozen=True)
class Jump:
    """Control moves forward to `target` (a later child of the same chain), which gets `input`
    (a `parallel`'s `on_success`/`on_error` `next` and `with`)."""

    target: str
    input: dict[str, Any] = field(default_factory=dict)


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
    handled: bool = False
    """A failure an `on_error` handler took over: FAILED in the ledger, WARNING to its group."""
    jump: Jump | None = None

    @property
    def group_state(self) -> State:
        """The state the enclosing group decides with (a handled failure counts as WARNING)."""
        return State.WARNING if self.handled and self.state is State.FAILED else self.state

    @property
    def really_succeeded(self) -> bool:
        """Did the child do its job? A SKIPPED child, a tolerated or a handled failure did not."""
        return self.state in (State.SUCCESS, State.WARNING) and not self.tolerated


@dataclass(frozen=True)
class Child:
    """One child of a group: a task, or a nested group run without a task run of its own (one
    item of a for-each). Keyed by instance, so a body copied per item never collides."""

    key: str
    task: Task | None = None
    body: Group | None = None
    value: Any = None
    """The for-each item this child runs for (None outside iterations)."""
    iteration: int | None = None


@dataclass
class Group:
    children: list[Child]
    depends_on: dict[str, list[str]] = field(default_factory=dict)
    """child key → keys that must have succeeded before it starts."""
    limit: int = 0
    """At most this many children at once; 0 = unlimited."""
    strategy: str = Strategy.WAIT_ALL
    stop_on_failure: bool = False
    """Start no new child after a failure (sequential groups, DAGs, for-each)."""
    min_success: int = 1
    timeout_s: float | None = None
    id: str | None = None
    """The flowable task this group belongs to (None for the flow's top level): errors name it."""
    only_when_jumped: frozenset[str] = frozenset()
    """Children that run only when a `Jump` targets them (tasks that are only `on_error.next`)."""
    on_failure: dict[str, str] = field(default_factory=dict)
    """child key → an `OnFailure` policy overriding the group's rule for that child's failure; the
    failure is then handled (FAILED in the ledger, WARNING to the group)."""

    @staticmethod
    def of_tasks(tasks: list[Task], **options: Any) -> Group:
        """Every task a child keyed by its id, with no order between them."""
        return Group([Child(task.id, task) for task in tasks], **options)

    @staticmethod
    def chain(tasks: list[Task], **options: Any) -> Group:
        """Tasks one after the other: each depends on the previous one. Ordering is not a
        concurrency limit, so a chain sets none (a parallel inside it keeps its own). A task that
        is only the target of an `on_error.next` in the chain runs only when jumped to."""
        depends = {child.id: [previous.id] for previous, child in zip(tasks, tasks[1:])}
        return Group(
            [Child(task.id, task) for task in tasks],
            depends,
            stop_on_failure=True,
            only_when_jumped=_error_handler_targets(tasks),
            **options,
        )


def _error_handler_targets(tasks: list[Task]) -> frozenset[str]:
    on_error = {task.properties["on_error"].get("next") for task in tasks if task.properties.get("on_error")}
    on_success = {task.properties["on_success"].get("next") for task in tasks if task.properties.get("on_success")}
    return frozenset(target for target in on_error - on_success if target)


@dataclass
class GroupResult:
    state: State
    results: dict[str, ChildResult]
    """Per child that started, in declaration order."""
    winner: str | None = None
    error: dict[str, Any] | None = None

    @property
    def output(self) -> Any:
        """A race's winner output, else child key → output (None where it did not succeed)."""
        if self.winner is not None:
            return self.results[self.winner].output
        return {key: result.output if result.really_succeeded else None for key, result in self.results.items()}
