"""The registry of task types: canonical names, accepted aliases, kinds and their properties.

Validation and normalization read this table, so adding a task type starts here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporal_flows.model import TaskKind


@dataclass(frozen=True)
class PropertySpec:
    """What one property accepts; `kind` names a check in `temporal_flows.dialects.tasklist`."""

    kind: str
    """string | integer | boolean | string_list | mapping | duration | tasks | choice | any"""
    required: bool = False
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    """Other (snake_case) names for the same property, e.g. `max_workers` for `concurrent`."""


@dataclass(frozen=True)
class TaskType:
    name: str
    kind: TaskKind
    aliases: tuple[str, ...] = ()
    properties: dict[str, PropertySpec] = field(default_factory=dict)
    implemented: bool = True
    """False: known to the language (SPEC §3.2) but not yet runnable; validation says so."""


COMMON_PROPERTIES: dict[str, PropertySpec] = {
    "id": PropertySpec("string", required=True),
    "type": PropertySpec("string", required=True),
    "description": PropertySpec("string"),
    "disabled": PropertySpec("boolean"),
    "run_if": PropertySpec("string"),
    "allow_failure": PropertySpec("boolean"),
    "allow_warning": PropertySpec("boolean"),
    "timeout": PropertySpec("duration"),
    "worker_group": PropertySpec("mapping"),
    "log_level": PropertySpec("choice", choices=("TRACE", "DEBUG", "INFO", "WARN", "ERROR")),
}

NOT_YET_SUPPORTED_PROPERTIES = ("retry", "errors", "finally")
"""Task properties of SPEC §3.3 that are recognized but not implemented yet."""

STRATEGIES = ("wait_all", "fail_fast", "best_effort", "race")

PROCESS_RUNNER = "io.kestra.plugin.core.runner.Process"

_TYPES = [
    TaskType(
        "parallel",
        TaskKind.FLOWABLE,
        ("io.kestra.plugin.core.flow.Parallel",),
        {
            "tasks": PropertySpec("tasks", required=True),
            "concurrent": PropertySpec("integer", aliases=("max_workers",)),
            "strategy": PropertySpec("choice", choices=STRATEGIES),
            "on_child_failure": PropertySpec("choice", choices=("FAIL", "CONTINUE")),
            "min_success": PropertySpec("integer"),
        },
    ),
    TaskType(
        "sequential",
        TaskKind.FLOWABLE,
        ("io.kestra.plugin.core.flow.Sequential",),
        {"tasks": PropertySpec("tasks", required=True)},
    ),
    TaskType(
        "commands",
        TaskKind.RUNNABLE,
        ("io.kestra.plugin.scripts.shell.Commands",),
        {
            "commands": PropertySpec("string_list", required=True),
            "env": PropertySpec("mapping"),
            "task_runner": PropertySpec("mapping"),
            "interpreter": PropertySpec("string_list"),
            "fail_fast": PropertySpec("boolean"),
        },
    ),
    TaskType(
        "return",
        TaskKind.PURE,
        ("io.kestra.plugin.core.debug.Return",),
        {"format": PropertySpec("string")},
    ),
    TaskType(
        "log",
        TaskKind.PURE,
        ("io.kestra.plugin.core.log.Log",),
        {
            "message": PropertySpec("any", required=True),
            "level": PropertySpec("choice", choices=("TRACE", "DEBUG", "INFO", "WARN", "ERROR")),
        },
    ),
    TaskType("foreach", TaskKind.FLOWABLE, ("io.kestra.plugin.core.flow.ForEach", "io.kestra.plugin.core.flow.EachSequential"), implemented=False),
    TaskType("each_parallel", TaskKind.FLOWABLE, ("io.kestra.plugin.core.flow.EachParallel",), implemented=False),
    TaskType("dag", TaskKind.FLOWABLE, ("io.kestra.plugin.core.flow.Dag",), implemented=False),
    TaskType("switch", TaskKind.FLOWABLE, ("io.kestra.plugin.core.flow.Switch",), implemented=False),
    TaskType("if", TaskKind.FLOWABLE, ("io.kestra.plugin.core.flow.If",), implemented=False),
    TaskType("allow_failure", TaskKind.FLOWABLE, ("io.kestra.plugin.core.flow.AllowFailure",), implemented=False),
    TaskType("pause", TaskKind.PURE, ("io.kestra.plugin.core.flow.Pause",), implemented=False),
    TaskType("subflow", TaskKind.FLOWABLE, ("io.kestra.plugin.core.flow.Subflow",), implemented=False),
    TaskType("script", TaskKind.RUNNABLE, ("io.kestra.plugin.scripts.python.Script", "io.kestra.plugin.scripts.python.Commands"), implemented=False),
    TaskType("http", TaskKind.RUNNABLE, ("io.kestra.plugin.core.http.Request",), implemented=False),
    TaskType("fail", TaskKind.PURE, ("io.kestra.plugin.core.execution.Fail",), implemented=False),
    TaskType("sleep", TaskKind.PURE, ("io.kestra.plugin.core.flow.Sleep",), implemented=False),
    TaskType("output_values", TaskKind.PURE, ("io.kestra.plugin.core.output.OutputValues",), implemented=False),
    TaskType("basic", TaskKind.RUNNABLE, (), implemented=False),
]

TASK_TYPES: dict[str, TaskType] = {task_type.name: task_type for task_type in _TYPES}
_BY_NAME: dict[str, TaskType] = {
    name: task_type for task_type in _TYPES for name in (task_type.name, *task_type.aliases)
}


def resolve_type(name: str) -> TaskType | None:
    """The task type a `type:` value names (canonical name or alias), or None."""
    return _BY_NAME.get(name)


def known_type_names() -> list[str]:
    return sorted(_BY_NAME)


def task_kind(canonical: str) -> TaskKind:
    return TASK_TYPES[canonical].kind
