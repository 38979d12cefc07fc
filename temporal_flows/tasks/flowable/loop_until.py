"""`loop_until`: its tasks in order, again and again, until `condition` is true (Kestra's LoopUntil,
named WaitFor before Kestra 0.21).

- Each iteration is one sequential group of `tasks`; their task runs carry `iteration` (1, 2, ...)
  and `outputs.<child>` is the latest iteration's. The loop's own output `iterationCount` (the
  iteration running; at the end, how many ran) is `outputs.<loop>.iterationCount` inside too.
- `condition` renders after each iteration (never before the first) with `if`'s truthiness; true
  ends the loop: SUCCESS, or WARNING when an iteration left a WARNING (Kestra goes on after one).
- A failed iteration ends the loop FAILED (its `errors` run).
- Between iterations a durable timer waits `checkFrequency.interval` (Kestra's default PT1M), so
  an iteration costs a few history events and no workflow activation loops without yielding.
- `checkFrequency.maxIterations` / `maxDuration` (from the loop's start, in workflow time; the last
  iteration starts at that moment at the latest): reached with `condition` still false, the loop
  ends SUCCESS, or FAILED naming the limit with `failOnMaxReached` (Kestra). Without
  `maxIterations`, DEFAULT_MAX_ITERATIONS bounds the loop and fails it: a run's history is bounded.
- `timeout` bounds the whole loop, its iterations and the waits between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from temporalio import workflow

from temporal_flows.expressions.templates import ExpressionError, calls_function, template_strings
from temporal_flows.model.durations import EXPECTED as DURATION_EXPECTED
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import TaskKind
from temporal_flows.model.keys import camel_case, snake_case
from temporal_flows.model.problems import did_you_mean
from temporal_flows.model.runs import State, worst
from temporal_flows.tasks.base import Plan, PropertySpec, TaskContext, TaskType, flowable_properties
from temporal_flows.tasks.flowable.conditional import is_true
from temporal_flows.tasks.plan import ChildResult, Group, GroupResult

DEFAULT_INTERVAL_S = 60.0
"""`checkFrequency.interval` when none is given: Kestra's PT1M (since 0.23)."""
DEFAULT_MAX_ITERATIONS = 1000
"""Iterations of a loop without `maxIterations` (Kestra: unlimited); past them it fails (error
`LoopLimitReached`). An iteration adds 5 history events (its timer and the workflow task it wakes)
plus 6 per activity in it, and a run has no continue-as-new yet: 1,000 iterations of one activity
are about 11,000 events."""
MAX_ITERATIONS = 8000
"""The most `maxIterations` may say: even an iteration of pure tasks adds 5 events, and no task run
starts past 44,000 (`engine.history.HISTORY_EVENTS_BUDGET`)."""
FREQUENCY_FIELDS = ("interval", "max_iterations", "max_duration")
CONDITION_ON_WORKER = ("jq", "render")
"""Functions only a worker runs; a condition renders in the workflow after each iteration."""


@dataclass(frozen=True)
class Frequency:
    """`checkFrequency`, read: seconds between iterations and the limits (None: not set)."""

    interval_s: float = DEFAULT_INTERVAL_S
    max_iterations: int | None = None
    max_duration_s: float | None = None


def frequency(value: Any) -> Frequency:
    """`checkFrequency` as written (camelCase or snake_case keys); ValueError naming the field."""
    if value is None:
        return Frequency()
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of {_names()}, got {value!r}")
    read: dict[str, Any] = {}
    for key, given in value.items():
        name = snake_case(str(key))
        if name not in FREQUENCY_FIELDS:
            spelled = list(FREQUENCY_FIELDS) if name == key else [camel_case(field) for field in FREQUENCY_FIELDS]
            raise ValueError(f"unknown field `{key}` (expected {_names()}){did_you_mean(str(key), spelled)}")
        if given is not None:
            read[name] = _count(key, given) if name == "max_iterations" else _positive_seconds(key, given)
    return Frequency(read.get("interval", DEFAULT_INTERVAL_S), read.get("max_iterations"), read.get("max_duration"))


def _names() -> str:
    return ", ".join(f"`{camel_case(name)}`" for name in FREQUENCY_FIELDS)


def _positive_seconds(key: str, given: Any) -> float:
    try:
        seconds = parse_duration(given)
    except ValueError:
        raise ValueError(f"`{key}` must be {DURATION_EXPECTED}, got {given!r}") from None
    if seconds <= 0:
        raise ValueError(f"`{key}` must be a positive duration, got {given!r}")
    return seconds


def _count(key: str, given: Any) -> int:
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        raise ValueError(f"`{key}` must be a whole number ≥ 1, got {given!r}")
    if given > MAX_ITERATIONS:
        raise ValueError(f"`{key}` may be at most {MAX_ITERATIONS:,} (a run's history holds no more iterations), "
                         f"got {given:,}; loop longer with a longer `interval`, or in a subflow per batch")
    return given


def _frequency_problem(value: Any) -> str | None:
    try:
        frequency(value)
    except ValueError as error:
        return str(error)
    return None


def _condition_problem(value: Any) -> str | None:
    for template in template_strings(value):
        for name in CONDITION_ON_WORKER:
            if calls_function(template, name):
                return (f"`{name}(...)` cannot run in a loop's condition: only a worker runs it, and the condition "
                        "renders in the workflow after each iteration; extract the value in a task of the loop "
                        "(an `output` extractor of type jmespath, or a script) and test that task's output")
    return None


@dataclass(frozen=True)
class _Limit:
    """A limit the loop reached with `condition` still false."""

    error_type: str
    why: str
    always_fails: bool = False
    """The default bound fails whatever `failOnMaxReached` says."""


@dataclass
class _Loop:
    """One loop task run: how many iterations ran, since when, and the worst state they left."""

    ctx: TaskContext
    every: Frequency
    started: datetime
    count: int = 1
    state: State = State.SUCCESS

    def iteration(self) -> Plan:
        """The plan of iteration `count`: the tasks in order, with `iterationCount` visible."""
        task = self.ctx.task
        group = Group.chain(task.tasks, id=task.id, timeout_s=self._time_left())
        return Plan(group, self.ctx.scope.limit, self._outputs(), iteration=self.count, repeat=self.after)

    async def after(self, outcome: GroupResult) -> Plan:
        """After an iteration: the result it decides, or the next iteration once the interval passed."""
        self.state = worst([self.state, outcome.state])
        if not outcome.state.succeeded:
            return self._end(State.FAILED, outcome, self._named_timeout(outcome.error))
        try:
            met = is_true(self.ctx.render(self.ctx.task.properties["condition"]))
        except ExpressionError as error:
            return self._end(State.FAILED, outcome, {"type": error.error_type, "message": f"`condition`: {error}"})
        if met:
            return self._end(self.state, outcome)
        limit = self._limit_reached()
        if limit is not None:
            return self._at_limit(outcome, limit)
        await workflow.sleep(self._wait(), summary=f"{self.ctx.task.id}: before iteration {self.count + 1}")
        if self._time_left() == 0.0:  # the wait ended at the `timeout`
            return self._end(State.FAILED, outcome, self._timeout_error())
        self.count += 1
        return self.iteration()

    def _elapsed(self) -> float:
        return (workflow.now() - self.started).total_seconds()

    def _time_left(self) -> float | None:
        """Seconds until the task's `timeout` (0 once past it), or None without one."""
        timeout = self.ctx.task.timeout_s
        return None if timeout is None else max(0.0, timeout - self._elapsed())

    def _wait(self) -> float:
        """The interval, cut at `maxDuration` (a last iteration starts then) and at the `timeout`."""
        waits = [self.every.interval_s]
        if self.every.max_duration_s is not None:
            waits.append(self.every.max_duration_s - self._elapsed())
        left = self._time_left()
        if left is not None:
            waits.append(left)
        return max(0.001, min(waits))

    def _limit_reached(self) -> _Limit | None:
        every = self.every
        if every.max_iterations is not None and self.count >= every.max_iterations:
            why = f"`condition` was still false after `checkFrequency.maxIterations` ({every.max_iterations}) iterations"
            return _Limit("MaxIterationsReached", why)
        if every.max_duration_s is not None and self._elapsed() >= every.max_duration_s:
            why = (f"`condition` was still false after `checkFrequency.maxDuration` ({every.max_duration_s:g} s, "
                   f"{self.count} iterations)")
            return _Limit("MaxDurationReached", why)
        if every.max_iterations is None and self.count >= DEFAULT_MAX_ITERATIONS:
            why = (f"`condition` was still false after {DEFAULT_MAX_ITERATIONS:,} iterations, the bound of a loop without "
                   "`checkFrequency.maxIterations` (each iteration grows the run's history); set `maxIterations`, "
                   "or a longer `interval` with `maxDuration`")
            return _Limit("LoopLimitReached", why, always_fails=True)
        return None

    def _at_limit(self, outcome: GroupResult, limit: _Limit) -> Plan:
        if limit.always_fails or self.ctx.task.properties.get("fail_on_max_reached"):
            error = {"type": limit.error_type, "message": f"loop `{self.ctx.task.id}`: {limit.why}"}
            return self._end(State.FAILED, outcome, error)
        return self._end(self.state, outcome)

    def _named_timeout(self, error: dict[str, Any] | None) -> dict[str, Any] | None:
        """An iteration cut by the group timer this loop set: the loop's `timeout`, named as such."""
        if error and error.get("type") == "Timeout" and error.get("task_id") == self.ctx.task.id:
            return self._timeout_error()
        return error

    def _timeout_error(self) -> dict[str, Any]:
        message = (f"loop `{self.ctx.task.id}` timed out after {self.ctx.task.timeout_s:g} s (its timeout bounds "
                   f"the iterations and the waits between them; {self.count} iterations started)")
        return {"type": "Timeout", "message": message, "task_id": self.ctx.task.id}

    def _outputs(self) -> dict[str, Any]:
        return {"iterationCount": self.count}

    def _end(self, state: State, outcome: GroupResult, error: dict[str, Any] | None = None) -> Plan:
        result = ChildResult(state, outcome.output, error if state is State.FAILED else None)
        return Plan(children_limit=self.ctx.scope.limit, outputs=self._outputs(), result=result)


def plan(ctx: TaskContext) -> Plan:
    """The first iteration; each next one comes from `_Loop.after`."""
    try:
        every = frequency(ctx.task.properties.get("check_frequency"))
    except ValueError as error:  # the loader refuses it: only a flow normalized elsewhere gets here
        invalid = {"type": "InvalidCheckFrequency", "message": f"`checkFrequency`: {error}"}
        return Plan(result=ChildResult(State.FAILED, error=invalid))
    return _Loop(ctx, every, workflow.now()).iteration()


TYPE = TaskType(
    "loop_until",
    TaskKind.FLOWABLE,
    ("io.kestra.plugin.core.flow.LoopUntil", "io.kestra.plugin.core.flow.WaitFor"),
    flowable_properties(
        condition=PropertySpec(
            "any", required=True, late=True, check=_condition_problem,
            description="rendered after each iteration; true ends the loop (false: 0, -0, null, '', false)",
        ),
        tasks=PropertySpec("tasks", required=True, description="run in order, once per iteration"),
        check_frequency=PropertySpec(
            "mapping", check=_frequency_problem,
            description=f"`interval` between iterations (default PT1M), `maxIterations` (default "
            f"{DEFAULT_MAX_ITERATIONS}, then FAILED; at most {MAX_ITERATIONS}), `maxDuration` (from the loop's start)",
        ),
        fail_on_max_reached=PropertySpec(
            "boolean", default=False, description="FAILED when `maxIterations` or `maxDuration` is reached (else SUCCESS)",
        ),
    ),
    "its tasks in order, again until a condition is true",
    plan=plan,
)
