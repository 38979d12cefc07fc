"""The registry of task types: one module per type, grouped by kind (`flowable/`, `pure/`,
`runnable/`), each declaring its names, typed properties and the hook that executes it.

The language reads the declarations, the engine calls the hooks; imports `model`, `expressions`,
`metadata` and `activities.api` (the activities' wire contract), never `language` or `engine`.
"""

from __future__ import annotations

from temporal_flows.tasks import basic
from temporal_flows.tasks.base import COMMON_PROPERTIES, PropertySpec, TaskType
from temporal_flows.tasks.flowable import (
    allow_failure, conditional, dag, foreach, loop_until, parallel, pause, sequential, subflow, switch,
)
from temporal_flows.tasks.pure import fail, labels, log, output_values, returns, sleep
from temporal_flows.tasks.runnable import commands, download, http, script

TYPES: tuple[TaskType, ...] = (
    parallel.TYPE,
    sequential.TYPE,
    foreach.FOREACH,
    foreach.EACH_PARALLEL,
    dag.TYPE,
    switch.TYPE,
    conditional.TYPE,
    allow_failure.TYPE,
    loop_until.TYPE,
    commands.TYPE,
    returns.TYPE,
    log.TYPE,
    fail.TYPE,
    sleep.TYPE,
    pause.TYPE,
    output_values.TYPE,
    labels.TYPE,
    basic.TYPE,
    subflow.TYPE,
    script.TYPE,
    http.TYPE,
    download.TYPE,
)

TASK_TYPES: dict[str, TaskType] = {task_type.name: task_type for task_type in TYPES}
_BY_NAME: dict[str, TaskType] = {name: task_type for task_type in TYPES for name in (task_type.name, *task_type.aliases)}


def resolve_type(name: str) -> TaskType | None:
    """The task type a `type:` value names (canonical name or alias), or None."""
    return _BY_NAME.get(name)


def task_type(canonical: str) -> TaskType:
    return TASK_TYPES[canonical]


def known_type_names() -> list[str]:
    return sorted(_BY_NAME)


__all__ = ["COMMON_PROPERTIES", "PropertySpec", "TaskType", "TASK_TYPES", "resolve_type", "task_type", "known_type_names"]
