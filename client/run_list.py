"""Recent runs of flows, from Temporal's visibility (the search attributes every run carries):
what `tflow list` prints and `tflow webui` lists.

A row's `state` is the run's own (SPEC §6), not Temporal's status: a completed workflow may be a
SUCCESS, WARNING or CANCELLED run (read from its result, the last event of its history), a running
one RUNNING, PAUSED or QUEUED (asked of the live run, which a worker answers). Filters on what
visibility holds (flow, namespace, labels, start time, Temporal's status) go to the server; a
`--state` that Temporal's status cannot tell is refined here, over at most `STATE_SCAN_LIMIT` runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Optional

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecution as Execution, WorkflowExecutionStatus as Status
from temporalio.service import RPCError

from temporal_flows.metadata import WORKFLOW_TYPE, label_term, labels_search_attribute_key, search_attribute_keys
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.requests import SUMMARY_QUERY

RUN_STATES = ("RUNNING", "PAUSED", "QUEUED", "SUCCESS", "WARNING", "FAILED", "CANCELLED")
"""What `tflow list --state` accepts and the STATE column shows (QUEUED: a run a concurrency
limit holds back, once the live run reports it)."""

UNREADABLE_COMPLETED = "COMPLETED"
"""Shown for a completed run whose result this client cannot read: Temporal's word, no guess."""

_STATES_OF_STATUS: dict[Status, frozenset[str]] = {
    Status.RUNNING: frozenset({"RUNNING", "PAUSED", "QUEUED"}),
    Status.COMPLETED: frozenset({"SUCCESS", "WARNING", "CANCELLED"}),  # a cancelled task ends its run CANCELLED
    Status.FAILED: frozenset({"FAILED"}),
    Status.TERMINATED: frozenset({"FAILED"}),
    Status.TIMED_OUT: frozenset({"FAILED"}),
    Status.CANCELED: frozenset({"CANCELLED"}),
}
"""The run states a workflow in each Temporal status can be in."""

_VISIBILITY_NAMES = {
    Status.RUNNING: "Running", Status.COMPLETED: "Completed", Status.FAILED: "Failed",
    Status.TERMINATED: "Terminated", Status.TIMED_OUT: "TimedOut", Status.CANCELED: "Canceled",
}
"""`ExecutionStatus` as Temporal's list filter spells it."""

STATE_SCAN_LIMIT = 1000
"""Runs examined at most to refine a `--state` Temporal's status cannot tell (each costs one
request): past it the listing stops, saying so."""

LIVE_STATE_TIMEOUT = timedelta(seconds=2)
"""How long a running run's worker gets to say whether it is paused; without an answer it lists as RUNNING."""

_CONCURRENT_LOOKUPS = 16


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list; each given field must match."""

    flow_id: Optional[str] = None
    namespace: Optional[str] = None
    """The flow's namespace: runs of flows in it or in a namespace under it (`company` holds `company.team`)."""
    labels: dict[str, str] = field(default_factory=dict)
    states: frozenset[str] = frozenset()
    since: Optional[datetime] = None
    """Runs started at or after this (aware) time."""


@dataclass
class RunListing:
    rows: list[dict[str, Any]]
    complete: bool = True
    """False when refining `states` stopped after `STATE_SCAN_LIMIT` runs, before `limit` rows matched."""


async def recent_runs(client: Client, limit: int, flow_id: Optional[str] = None,
                      labels: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """At most `limit` runs, newest first, of one flow id and with all `labels` when given."""
    return (await find_runs(client, limit, RunFilter(flow_id=flow_id, labels=dict(labels or {})))).rows


async def find_runs(client: Client, limit: int, wanted: RunFilter) -> RunListing:
    """At most `limit` runs matching `wanted`, newest first: `{run_id, flow, namespace, state,
    status, started_at, ended_at, labels}` each (`status`: Temporal's)."""
    query = visibility_query(wanted)
    if not _needs_refining(wanted.states):
        executions = [execution async for execution in client.list_workflows(query, limit=limit)]
        states = await _states(client, executions)
        return RunListing([_row(execution, state) for execution, state in zip(executions, states)])
    rows: list[dict[str, Any]] = []
    scanned = 0
    batch: list[Execution] = []
    async for execution in client.list_workflows(query, page_size=100):
        batch.append(execution)
        scanned += 1
        if len(batch) == _CONCURRENT_LOOKUPS * 2 or scanned == STATE_SCAN_LIMIT:
            rows += await _matching(client, batch, wanted.states)
            batch = []
            if len(rows) >= limit or scanned == STATE_SCAN_LIMIT:
                break
    rows += await _matching(client, batch, wanted.states)
    return RunListing(rows[:limit], complete=len(rows) >= limit or scanned < STATE_SCAN_LIMIT)


def visibility_query(wanted: RunFilter) -> str:
    """Temporal's list filter for what visibility can tell of `wanted`."""
    flow_key, namespace_key = search_attribute_keys()
    labels_key = labels_search_attribute_key()
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
    if wanted.flow_id:
        clauses.append(f"{flow_key.name} = {_quoted(wanted.flow_id)}")
    if wanted.namespace:
        namespace = wanted.namespace.rstrip(".")
        clauses.append(f"({namespace_key.name} = {_quoted(namespace)} OR {namespace_key.name} STARTS_WITH {_quoted(namespace + '.')})")
    for key, value in wanted.labels.items():
        clauses.append(f"{labels_key.name} = {_quoted(label_term(key, value))}")
    if wanted.since is not None:
        clauses.append(f"StartTime >= {_quoted(wanted.since.astimezone(timezone.utc).isoformat())}")
    if wanted.states:
        statuses = [_VISIBILITY_NAMES[status] for status, states in _STATES_OF_STATUS.items() if states & wanted.states]
        clauses.append("(" + " OR ".join(f"ExecutionStatus = '{name}'" for name in statuses) + ")")
    return " AND ".join(clauses)


def since_time(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from `now` (`1h`, `7d`, `PT30M`) or an ISO date or date-time (a
    time without an offset is local). ValueError says what is accepted."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a duration like `1h` or `7d`, or an ISO date-time like `2024-05-01T08:00:00Z`, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _needs_refining(states: frozenset[str]) -> bool:
    """True when some Temporal status the filter lets through holds runs in states not wanted."""
    return any(states & possible and not possible <= states for possible in _STATES_OF_STATUS.values())


async def _matching(client: Client, executions: list[Execution], states: frozenset[str]) -> list[dict[str, Any]]:
    found = await _states(client, executions)
    return [_row(execution, state) for execution, state in zip(executions, found) if state in states]


async def _states(client: Client, executions: Iterable[Execution]) -> list[str]:
    """Each run's own state, looked up `_CONCURRENT_LOOKUPS` at a time."""
    room = asyncio.Semaphore(_CONCURRENT_LOOKUPS)

    async def one(execution: Execution) -> str:
        async with room:
            return await run_state(client, execution)

    return list(await asyncio.gather(*(one(execution) for execution in executions)))


async def run_state(client: Client, execution: Execution) -> str:
    """The run's state as `tflow status` says it, from as little as tells it."""
    status = execution.status
    possible = _STATES_OF_STATUS.get(status) if status is not None else None
    if possible is None:
        return status.name if status is not None else "UNKNOWN"
    if len(possible) == 1:
        return next(iter(possible))
    if status == Status.RUNNING:
        return await _live_state(client, execution.id, execution.run_id)
    return await _completed_state(client, execution.id, execution.run_id)


async def _live_state(client: Client, workflow_id: str, run_id: Optional[str]) -> str:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        summary = await handle.query(SUMMARY_QUERY, rpc_timeout=LIVE_STATE_TIMEOUT)
    except Exception:  # noqa: BLE001 - no worker answered in time, or it ended meanwhile: it was running
        return "RUNNING"
    state = summary.get("state") if isinstance(summary, dict) else None
    return state if state in RUN_STATES else "RUNNING"


async def _completed_state(client: Client, workflow_id: str, run_id: Optional[str]) -> str:
    """The `state` of the run's result (its summary), read from the last event of its history."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
        maximum_page_size=1,
    )
    try:
        response = await client.workflow_service.get_workflow_execution_history_reverse(request)
        payloads = response.history.events[0].workflow_execution_completed_event_attributes.result.payloads
        [result] = await client.data_converter.decode(payloads[:1], [dict])
    except RPCError:
        return UNREADABLE_COMPLETED  # gone meanwhile (its retention ended)
    except Exception:  # noqa: BLE001 - a result this client cannot decode (another codec's key)
        return UNREADABLE_COMPLETED
    state = result.get("state") if isinstance(result, dict) else None
    return state if state in RUN_STATES else UNREADABLE_COMPLETED


def _row(execution: Execution, state: str) -> dict[str, Any]:
    flow_key, namespace_key = search_attribute_keys()
    attributes = execution.typed_search_attributes
    terms = [term.partition("=") for term in attributes.get(labels_search_attribute_key()) or []]
    return {
        "run_id": execution.id,
        "flow": f"{attributes.get(namespace_key) or '?'}.{attributes.get(flow_key) or '?'}",
        "namespace": attributes.get(namespace_key),
        "state": state,
        "status": execution.status.name if execution.status else "UNKNOWN",
        "started_at": execution.start_time.isoformat(),
        "ended_at": execution.close_time.isoformat() if execution.close_time else None,
        "labels": {key: value for key, _, value in terms},
    }


async def current_labels(client: Client, run_id: str) -> dict[str, str]:
    """The run's labels now (a `labels` task may have changed them), from its memo."""
    description = await client.get_workflow_handle(run_id).describe()
    labels = await description.memo_value("labels", {})
    return {str(key): str(value) for key, value in labels.items()} if isinstance(labels, dict) else {}


def _quoted(text: str) -> str:
    """A string literal of Temporal's list filter."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
