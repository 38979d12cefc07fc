"""What a task type declares: names, kind, typed properties, and the one hook that executes it.

Validation, normalization and the interpreter read only these declarations (one module per type
in this package), so adding a task type touches one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

from temporal_flows.expressions.extractors import extractor_problem
from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.model.retries import RetryPolicy
from temporal_flows.model.runs import PauseEnd, TaskRun
from temporal_flows.tasks.plan import ChildResult, Group, GroupResult

if TYPE_CHECKING:
    from temporal_flows.tasks.runnable.activity import RunnableType


class PauseRoom(Protocol):
    """Where a `pause` waits durably for its resume: the engine's `Pauses` (workflow state)."""

    async def wait(
        self, task_run: TaskRun, on_resume: list[dict[str, Any]], duration_s: float | None, timeout_s: float | None
    ) -> tuple[PauseEnd, dict[str, Any] | None]: ...

    def ended(self, task_run_id: str) -> PauseEnd | None: ...

    def defaults(self, on_resume: list[dict[str, Any]]) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class PropertySpec:
    """What one property accepts. `kind` names a check of the task-list dialect:
    string | integer | number | boolean | string_list | mapping | duration | choice | any |
    tasks (a list of tasks) | task_cases (a mapping of task lists) | dag_tasks | handler | retry |
    values (a list, or a string that renders to a JSON list) | inputs (input declarations, like a
    flow's `inputs`)."""

    kind: str
    required: bool = False
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    """Other (snake_case) names for the same property, e.g. `max_workers` for `concurrent`."""
    default: Any = None
    description: str = ""
    minimum: int = 0
    """For `integer`: the smallest value accepted."""
    dynamic: bool = False
    """A template is accepted in place of the value and checked when it renders (task start)."""
    foreign: bool = False
    """Its templates render in another run (a subflow's `outputs`, against the child run): their
    syntax is checked, not their references to this flow's tasks."""
    check: Callable[[Any], str | None] | None = None
    """A further check of the value beyond its kind: why it is invalid, or None (run when the
    flow loads; templates are left to render)."""
    late: bool = False
    """Its templates render after the task's children ran, each time (a loop's `condition`), never
    when the task starts: they may read the task's own outputs, and no worker renders them ahead."""


@dataclass(frozen=True)
class Scope:
    """Where a task runs: its enclosing task runs (nearest first), the concurrency limit it
    inherits, the for-each items it runs for (outermost first), the retry it inherits, and the
    `input` a jump gave it."""

    parents: tuple[TaskRun, ...] = ()
    limit: int = 0
    values: tuple[Any, ...] = ()
    iteration: int | None = None
    retry: RetryPolicy | None = None
    input: dict[str, Any] | None = None

    @property
    def value(self) -> Any:
        """The innermost for-each item (`taskrun.value`)."""
        return self.values[-1] if self.values else None


@dataclass
class TaskContext:
    """What a task type's hook may use: the task, its task run and scope, and its templates."""

    task: Task
    task_run: TaskRun
    scope: Scope
    max_workers: int
    render: Callable[..., Any]
    """render(value, extra=None): every template in `value`, with `extra` names added."""
    random: Callable[[], float]
    """The workflow's deterministic random source."""
    cancel_requested: bool = False
    """Set when the task was cancelled while an attempt was ending on its own: no retry follows."""
    labels: dict[str, str] = field(default_factory=dict)
    """The run's labels (the flow's and the run's own), which a subflow may pass on: the very dict
    templates read `labels.<name>` from, so a `labels` task updates it in place."""
    subflows: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Flows this run may call as subflows: `namespace.flowId` → normalized flow (`RunRequest.subflows`)."""
    pauses: PauseRoom | None = None
    """The run's paused task runs, where a `pause` waits for its resume."""
    make_room: Callable[[int], Awaitable[None]] | None = None
    """Awaited before a request of that many bytes goes out (a child run's start): it waits while
    this workflow task already sent its share (`temporal_flows.engine.history.HistoryBudget`)."""


@dataclass(frozen=True)
class Plan:
    """What a flowable decided to run: a group (its children inherit `children_limit`), or a
    result decided without children; `outputs` are the flowable's own (a switch's `value`)."""

    group: Group | None = None
    children_limit: int = 0
    outputs: dict[str, Any] | None = None
    result: ChildResult | None = None
    iteration: int | None = None
    """The children's `taskrun.iteration` (a loop's iteration count); None: the task's own."""
    repeat: RepeatHook | None = None
    """A loop: after the group ends, the next plan from its outcome (the next iteration, or a
    decided result). While it repeats, the plan's `outputs` are visible to the children."""


RepeatHook = Callable[[GroupResult], Awaitable[Plan]]
"""May wait (durably) before it answers: a loop's interval between iterations."""


PlanHook = Callable[[TaskContext], "Plan | Awaitable[Plan]"]
"""Usually decided at once; a `pause` first waits (durably) and plans after."""
EvaluateHook = Callable[[TaskContext], Awaitable[ChildResult]]
ConcludeHook = Callable[[TaskContext, GroupResult, ChildResult], ChildResult]


@dataclass(frozen=True)
class TaskType:
    name: str
    kind: TaskKind
    aliases: tuple[str, ...] = ()
    properties: Mapping[str, PropertySpec] = field(default_factory=dict)
    description: str = ""
    plan: PlanHook | None = None
    """Flowable: build the group of children to run."""
    conclude: ConcludeHook | None = None
    """Flowable, optional: turn the group's outcome into the task's result (parallel handlers)."""
    evaluate: EvaluateHook | None = None
    """Pure: compute the result inside the workflow."""
    runnable: RunnableType | None = None
    """Runnable: build the activity call and read its result."""
    default_properties: Callable[[Task, str], None] | None = None
    """Fill defaults that depend on how the flow named the type (e.g. Kestra's Parallel)."""
    delegate: Callable[[Mapping[str, Any]], str | None] | None = None
    """A type decided by its fields (`basic`): the canonical type those fields select."""
    one_of: tuple[str, ...] = ()
    """Properties of which a task of this type sets exactly one (a script's `script` or `commands`)."""
    runs_yet: bool = True
    """False: a valid part of the language whose execution arrives in a later version; flows with
    it validate, but `tflow run` refuses to start them (saying which task and why)."""


COMMON_PROPERTIES: dict[str, PropertySpec] = {
    "id": PropertySpec("string", required=True),
    "type": PropertySpec("string", required=True),
    "description": PropertySpec("string"),
    "disabled": PropertySpec("boolean"),
    "run_if": PropertySpec("string"),
    "allow_failure": PropertySpec("boolean"),
    "allow_warning": PropertySpec("boolean"),
    "timeout": PropertySpec("duration"),
    "retry": PropertySpec("retry"),
    "worker_group": PropertySpec("mapping"),
    "log_level": PropertySpec("choice", choices=("TRACE", "DEBUG", "INFO", "WARN", "ERROR")),
}
"""Properties every task has (SPEC §3.3)."""

FLOWABLE_PROPERTIES: dict[str, PropertySpec] = {
    "errors": PropertySpec("tasks", description="run in order after a failure inside"),
    "finally": PropertySpec("tasks", description="always run in order at the end"),
}
"""Properties every flowable has besides the common ones (SPEC §3.5)."""


def flowable_properties(**own: PropertySpec) -> dict[str, PropertySpec]:
    return {**own, **FLOWABLE_PROPERTIES}


RUNNABLE_PROPERTIES: dict[str, PropertySpec] = {
    "output": PropertySpec(
        "any",
        check=extractor_problem,
        description="output extractors: [{name, type: json | jmespath | text, value}] applied to the "
        "body / stdout; each result at outputs.<id>.<name>",
    ),
}
"""Properties every runnable has besides the common ones (SPEC §4: output extractors)."""


def runnable_properties(**own: PropertySpec) -> dict[str, PropertySpec]:
    return {**own, **RUNNABLE_PROPERTIES}


def combine_limits(*limits: int | None) -> int:
    """The tightest of several concurrency limits, where 0/None means unlimited."""
    bounded = [limit for limit in limits if limit]
    return min(bounded) if bounded else 0
