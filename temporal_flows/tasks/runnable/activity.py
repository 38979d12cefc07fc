"""What a runnable task type declares to become an activity (`RunnableType`), and the activity
options (timeouts, heartbeats, lost-worker re-dispatch, task queue, summary) built in one place.
Each runnable type's module (`temporal_flows.tasks.*`) builds its call; the interpreter stays generic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

from temporal_flows.metadata import DEFAULT_TASK_TIMEOUT, HEARTBEAT_TIMEOUT
from temporal_flows.model.flow import Task


def redispatch_policy(redispatch_limit: int) -> RetryPolicy:
    """Temporal retries only what the task did not decide: a lost worker (heartbeat or
    start-to-close timeout), at most `redispatch_limit` times. Everything else is raised
    non-retryable by the activity (SPEC §3.3, §7)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=redispatch_limit + 1,
    )


@dataclass(frozen=True)
class ActivityCall:
    activity: str
    request: Any
    result_type: type


@dataclass(frozen=True)
class RunnableOutcome:
    outputs: dict[str, Any]
    metrics: list[dict[str, Any]]


@dataclass(frozen=True)
class RunnableType:
    build: Callable[[Task, dict[str, Any], "RunIdentity"], ActivityCall]
    """(task, rendered properties, identity) → the activity call."""
    read: Callable[[Any], RunnableOutcome]
    """Activity result (or failure details, as a dict) → outputs and metrics."""


def extractors_of(props: dict[str, Any]) -> list[dict[str, Any]]:
    """A runnable's rendered `output` extractors, for its activity request (applied on the worker,
    `activities.extracting`)."""
    return [dict(item) for item in props.get("output") or []]


def with_extracted(outputs: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """A runnable's outputs plus what its extractors found (`outputs.<id>.<name>`); an extractor
    named like a built-in output replaces it."""
    return {**outputs, **(result.get("extracted") or {})}


@dataclass(frozen=True)
class RunIdentity:
    run_id: str
    task_run_id: str
    root_run_id: str = ""
    """The run at the top of this run's subflow calls: the worker binds stored values to it."""


def activity_options(task: Task, summary: str, redispatch_limit: int) -> dict[str, Any]:
    """Options for `workflow.execute_activity` of a runnable task."""
    timeout = DEFAULT_TASK_TIMEOUT
    if task.timeout_s is not None:
        # The activity enforces the task's own timeout and fails non-retryably; this bound only
        # catches a worker that hangs past it.
        timeout = timedelta(seconds=task.timeout_s) + HEARTBEAT_TIMEOUT
    return {
        "task_queue": task.worker_group,
        "start_to_close_timeout": timeout,
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "retry_policy": redispatch_policy(redispatch_limit),
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        "summary": summary,
    }
