"""Replaying runs against the installed interpreter (`tflow replay`): how a user checks that an
upgrade still makes, for each of their real runs, the decisions its history recorded.

A history replays with Temporal's `Replayer`, set up as a worker runs flows: the `FlowWorkflow`
class, `client.worker.workflow_runner()` (the same sandbox and passthrough modules) and the
client's data converter (the same codec, so encrypted histories decode). Temporal says *what* did
not match but not *where*; the first diverging event is found by replaying ever shorter prefixes of
the history (a prefix that ends before the divergence replays cleanly), about log2(events) replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Optional, Sequence

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, WorkflowReplayResult

from client.codec import ENCODING, KEY_ENV, KEY_FILE_ENV, CodecDecodeError
from client.worker import workflow_runner
from temporal_flows.engine.workflow import FlowWorkflow

MAX_HISTORY_FILE_BYTES = 256 * 1024 * 1024
"""A history file past this is refused unread (Temporal's own limit on a history is 50 MB)."""
MIN_REPLAYABLE_EVENTS = 2
"""A history needs its start and a workflow task to replay (with one event the replayer waits forever)."""
DEADLOCK_CODE = "[TMPRL1101]"
DEADLOCK_RETRIES = 2
"""A workflow task that did not yield within the SDK's 2 s (a busy machine) is retried by Temporal
on a worker; replay tries such a history again too, so that load alone is no divergence."""
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_EVENT_TYPE_PREFIX = "EVENT_TYPE_"


class HistoryFileError(Exception):
    """A `--history` file that is not a readable workflow history (exit code 2)."""


@dataclass(frozen=True)
class RunKey:
    """One execution of a run: its run id (Temporal's workflow id) and Temporal's run id (None: the latest)."""

    run_id: str
    execution: Optional[str] = None


@dataclass(frozen=True)
class ReplayOutcome:
    """What replaying one history showed; `error` None: every decision matched."""

    run_id: str
    events: int
    error: Optional[str] = None
    event_id: Optional[int] = None
    """The first event whose replay did not match what the code did (None when ok or not found)."""
    event_type: Optional[str] = None
    source: Optional[str] = None
    """The history file it came from (None: fetched from the server)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def flow_replayer(data_converter: DataConverter) -> Replayer:
    """A replayer of flow runs as a worker would run them (see the module docstring)."""
    return Replayer(workflows=[FlowWorkflow], workflow_runner=workflow_runner(), data_converter=data_converter)


class ReplaySession:
    """One replaying worker for many histories, each replayed when given, in turn: starting a
    worker per history costs about as much as replaying a small one."""

    def __init__(self, replayer: Replayer):
        self.converter: Optional[DataConverter] = replayer.config().get("data_converter")
        self._replayer = replayer
        self._given: asyncio.Queue[WorkflowHistory] = asyncio.Queue(maxsize=1)
        self._exit = contextlib.AsyncExitStack()
        self._results: Optional[AsyncIterator[WorkflowReplayResult]] = None

    async def __aenter__(self) -> ReplaySession:
        self._results = aiter(await self._exit.enter_async_context(self._replayer.workflow_replay_iterator(self._feed())))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._exit.aclose()

    async def _feed(self) -> AsyncIterator[WorkflowHistory]:
        while True:
            yield await self._given.get()

    async def failure(self, history: WorkflowHistory) -> Optional[Exception]:
        """Why replaying `history` failed; None when every decision matched."""
        assert self._results is not None, "used inside `async with`"
        for _ in range(1 + DEADLOCK_RETRIES):
            await self._given.put(history)
            failure = (await anext(self._results)).replay_failure
            if failure is None or DEADLOCK_CODE not in str(failure):
                break
        return failure


async def replay_history(session: ReplaySession, history: WorkflowHistory, source: Optional[str] = None) -> ReplayOutcome:
    """Replay `history`; on a failure, name the first event that diverged."""
    events = len(history.events)
    refused = await _unreplayable(history, session.converter)
    if refused:
        return ReplayOutcome(history.workflow_id, events, refused, source=source)
    failure = await session.failure(history)
    if failure is None:
        return ReplayOutcome(history.workflow_id, events, source=source)
    event = await _first_diverging_event(session, history)
    return ReplayOutcome(
        history.workflow_id, events, failure_reason(failure),
        event_id=event.event_id if event else None, event_type=event_type_name(event) if event else None, source=source,
    )


async def _first_diverging_event(session: ReplaySession, history: WorkflowHistory) -> Optional[HistoryEvent]:
    """The last event of the shortest prefix of `history` that fails to replay (binary search: a
    prefix fails when it holds the divergence, and replay stops at the first one)."""
    events = list(history.events)
    low, high = MIN_REPLAYABLE_EVENTS, len(events)
    while low < high:
        middle = (low + high) // 2
        if await session.failure(WorkflowHistory(history.workflow_id, events[:middle])):
            high = middle
        else:
            low = middle + 1
    return events[high - 1] if events else None


async def _unreplayable(history: WorkflowHistory, converter: Optional[DataConverter]) -> Optional[str]:
    """Why `history` cannot be replayed at all, said plainly (a replay would only show the workflow
    task failing); None when it can be tried."""
    events = history.events
    if len(events) < MIN_REPLAYABLE_EVENTS or not events[0].HasField("workflow_execution_started_event_attributes"):
        return "not a replayable history: it must start with WorkflowExecutionStarted and hold a workflow task"
    started = events[0].workflow_execution_started_event_attributes
    if started.workflow_type.name != FlowWorkflow.__name__:
        return f"not a flow run: its workflow type is {started.workflow_type.name!r}, not {FlowWorkflow.__name__!r}"
    if not any(payload.metadata.get("encoding") == ENCODING for payload in started.input.payloads):
        return None
    if converter is None or converter.payload_codec is None:
        return f"its payloads are encrypted: set {KEY_ENV} (or {KEY_FILE_ENV}) to the key the run was written with"
    try:
        await converter.payload_codec.decode(started.input.payloads)
    except CodecDecodeError as error:
        return f"cannot decrypt its payloads: {error}"
    return None


def failure_reason(failure: Exception) -> str:
    """The replay failure's own message (Temporal's, e.g. `[TMPRL1100] Nondeterminism error: Activity
    type of scheduled event 'a' does not match activity type of activity command 'b'`), without the
    wrapping that the SDK core adds around it."""
    text = str(failure)
    found = _CORE_MESSAGE.search(text)
    if found is None:
        return text or type(failure).__name__
    try:
        return json.loads(f'"{found.group(1)}"')
    except json.JSONDecodeError:
        return found.group(1)


def event_type_name(event: HistoryEvent) -> str:
    """`ActivityTaskScheduled` for EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, as the Temporal UI names it."""
    name = EventType.Name(event.event_type).removeprefix(_EVENT_TYPE_PREFIX)
    return "".join(word.capitalize() for word in name.split("_"))


def child_runs(history: WorkflowHistory) -> list[RunKey]:
    """The child runs (subflows) that `history`'s run started, in the order they started."""
    return [
        RunKey(started.workflow_execution.workflow_id, started.workflow_execution.run_id or None)
        for started in (
            event.child_workflow_execution_started_event_attributes for event in history.events
            if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
        )
    ]


async def fetch_history(client: Client, run: RunKey) -> WorkflowHistory:
    return await client.get_workflow_handle(run.run_id, run_id=run.execution).fetch_history()


async def replay_runs(client: Client, session: ReplaySession, runs: Sequence[RunKey], limit: int) -> AsyncIterator[ReplayOutcome]:
    """Replay each of `runs` and, after each, the child runs it started (theirs too), each execution
    once, at most `limit` in all; outcomes as they come."""
    pending = list(runs)
    seen: set[RunKey] = set()
    replayed = 0
    while pending and replayed < limit:
        run = pending.pop(0)
        if run in seen:
            continue
        seen.add(run)
        try:
            history = await fetch_history(client, run)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # gone since it was listed or started (retention)
                continue
            raise
        outcome = await replay_history(session, history)
        replayed += 1
        yield outcome
        pending[:0] = [child for child in child_runs(history) if child not in seen]


async def runs_matching(client: Client, query: str, limit: int) -> list[RunKey]:
    """The executions a visibility `query` lists (open and closed), newest first, at most `limit`."""
    return [RunKey(execution.id, execution.run_id) async for execution in client.list_workflows(query, limit=limit)]


def read_history_file(path: Path) -> WorkflowHistory:
    """A history written by `temporal workflow show --output json` (or the Web UI's download, or
    `WorkflowHistory.to_json`); its run id as recorded in it where it can be told (`recorded_run_id`),
    else the file's name. HistoryFileError names the file and what is wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_HISTORY_FILE_BYTES:
            raise HistoryFileError(f"{path}: {size} bytes, more than a history can be ({MAX_HISTORY_FILE_BYTES} bytes)")
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise HistoryFileError(f"{path}: cannot read it: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HistoryFileError(f"{path}: not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list) or not document["events"]:
        raise HistoryFileError(f"{path}: expected a workflow history, a JSON object with a non-empty `events` list "
                               "(`temporal workflow show --workflow-id ID --output json`)")
    try:
        history = WorkflowHistory.from_json("", document)
    except Exception as error:  # noqa: BLE001 - protobuf's ParseError and the SDK's fix-ups raise several kinds
        raise HistoryFileError(f"{path}: not a workflow history: {error}") from None
    if not history.events[0].HasField("workflow_execution_started_event_attributes"):
        raise HistoryFileError(f"{path}: not a whole workflow history: its first event is "
                               f"{event_type_name(history.events[0])}, not WorkflowExecutionStarted")
    return WorkflowHistory(recorded_run_id(history.events) or path.stem, history.events)


def recorded_run_id(events: Iterable[HistoryEvent]) -> Optional[str]:
    """The run id a history was recorded under, when it shows: a file holds no workflow id, but a
    run that starts child runs names them `<run id>.<task id>.<task run id>[-attempt]`
    (`tasks.flowable.subflow`), and those ids are what replay checks of it."""
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            child_id = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            parent, separator, _ = child_id.rpartition(".")
            parent, separator, _ = parent.rpartition(".")
            if separator and parent:
                return parent
    return None
