"""What a run is started and resumed with, and the names its callers use: the workflow's input
(`RunRequest`), its `resume` update's argument, its queries and its failure type. The client,
the `subflow` task and the workflow agree on these; pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporal_flows.metadata import DEFAULT_MAX_PENDING_TASKS, DEFAULT_REDISPATCH_LIMIT

SUMMARY_QUERY = "summary"
"""The run's state without its task runs: bounded whatever the flow's size."""
TASK_RUNS_QUERY = "task_runs"
"""One page of the ledger from an offset (`LedgerPage` as a dict)."""
FLOW_FAILED_ERROR = "FlowFailed"
"""Error type of a run that ended FAILED; its first detail is the run's summary (as the result)."""
RESUME_UPDATE = "resume"
"""Wake paused task runs: `ResumeRequest` as a dict in, `{"resumed": [...]}` out; refused (nothing
paused, no such task, bad inputs) by its validator with an `ApplicationError` of type `ResumeRefused`."""
RESUME_REFUSED_ERROR = "ResumeRefused"

@dataclass
class RunRequest:
    """The workflow input: the normalized flow plus what this run was started with."""

    flow: dict[str, Any]
    flow_hash: str = ""
    max_workers: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    """Given inputs (resolved by the client, or raw from a calling subflow task): resolved again
    against the flow's declarations before any task runs."""
    labels: dict[str, str] = field(default_factory=dict)
    """The run's own labels (`tflow run --label`), over the flow's."""
    max_pending_tasks: int = DEFAULT_MAX_PENDING_TASKS
    redispatch_limit: int = DEFAULT_REDISPATCH_LIMIT
    subflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Flows the run may call as subflows, found by the client before the start (workflow code
    reads no files): `namespace.flowId` → normalized flow (`Flow.to_input()`); child runs get it too."""
    caller_outputs: dict[str, Any] = field(default_factory=dict)
    """For a subflow's child run: the calling task's `outputs` (name → template), rendered against
    this run at its end into the summary's `caller_outputs` (`{values}` or `{error}`)."""


@dataclass
class ResumeRequest:
    """What `tflow resume` asks: every pause (task None), or those of a task id or a task run id,
    with the values of their `onResume` inputs (as given on the command line; the pause resolves them)."""

    task: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
