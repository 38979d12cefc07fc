"""A flow's Schedule triggers as Temporal Schedules (SPEC §5): deploy, undeploy, list.

Each trigger becomes the schedule `<namespace>.<flow id>.<trigger id>`, whose action starts the
interpreter workflow with the flow as normalized at deploy time and the trigger's inputs resolved
then, carrying the same summary, memo and search attributes as a run `tflow run` starts — so
scheduled runs show in `tflow list` and the Web UI like any other. The action's memo also names the
schedule's flow and cron (Temporal keeps only the compiled calendar), which is how `schedules`
shows them and how `undeploy` tells a flow's schedules from another's that shares the id prefix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from client.subflows import resolve_subflows
from client.runs import MISSING_SEARCH_ATTRIBUTES, REGISTER_SEARCH_ATTRIBUTES, lacks_search_attributes, run_metadata, run_request
from temporal_flows.engine.workflow import FlowWorkflow
from temporal_flows.language.inputs import InputError, resolve_inputs
from temporal_flows.language.loader import DefaultsFile, LoadedFlow
from temporal_flows.language.triggers import SCHEDULE_TRIGGER, ScheduleTrigger, is_schedule, schedule_id, schedule_of, schedule_prefix
from temporal_flows.metadata import WORKFLOW_TYPE
from temporal_flows.model.flow import Location
from temporal_flows.model.problems import FlowError, Problem
from temporal_flows.model.requests import RunRequest

SCHEDULE_MEMO = "schedule"
"""The action memo key naming the schedule's flow, trigger and cron."""
NEXT_RUNS_SHOWN = 3


@dataclass(frozen=True)
class Deployed:
    """What `deploy` did to one schedule."""

    schedule_id: str
    action: str
    """`created`, `updated` or `removed`."""


@dataclass
class ScheduleRow:
    """One schedule as `tflow schedules` shows it."""

    schedule_id: str
    flow: str
    trigger: str
    cron: str
    timezone: str
    paused: bool
    next_runs: list[str] = field(default_factory=list)
    recent_runs: list[str] = field(default_factory=list)
    task_queue: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def schedule_triggers(loaded: LoadedFlow) -> list[ScheduleTrigger]:
    return [schedule_of(trigger) for trigger in loaded.flow.triggers if is_schedule(trigger)]


@dataclass(frozen=True)
class Planned:
    """A Schedule trigger with the run request its schedule starts."""

    trigger: ScheduleTrigger
    request: RunRequest


def plan(loaded: LoadedFlow, defaults: DefaultsFile | None = None) -> list[Planned]:
    """Each Schedule trigger with its run request (inputs resolved, labels added, subflows found
    with the plugin defaults `loaded` was loaded with),
    before anything is deployed; raises `FlowError` with every problem, each at its trigger:
    a trigger type that cannot be deployed, inputs that do not fit, a subflow not found."""
    flow = loaded.flow
    problems: list[Problem] = []

    def at(trigger_id: str, message: str) -> Problem:
        where = loaded.source_map.declarations.get(("triggers", trigger_id), Location(flow.source_file, 1, 1))
        return Problem(where.file, where.line, where.column, message)

    for trigger in flow.triggers:
        if not is_schedule(trigger):
            problems.append(at(trigger["id"], (
                f"trigger `{trigger['id']}` has type `{trigger.get('type')}`, which cannot be deployed: "
                f"only `{SCHEDULE_TRIGGER}` triggers become Temporal Schedules"
            )))
    planned = []
    subflows: dict[str, dict[str, Any]] | None = None  # found once, when a request first needs them
    for trigger in schedule_triggers(loaded):
        try:
            inputs = resolve_inputs(flow.inputs, trigger.inputs)
        except InputError as error:
            problems.extend(at(trigger.id, f"Schedule trigger `{trigger.id}`, `inputs`: {message}") for message in error.messages)
            continue
        if subflows is None:
            subflows = resolve_subflows(loaded, defaults=defaults)
        planned.append(Planned(trigger, run_request(loaded, inputs=inputs, labels=trigger.labels, subflows=subflows)))
    if problems:
        raise FlowError(problems)
    return planned


async def deploy(
    client: Client,
    loaded: LoadedFlow,
    planned: list[Planned],
    *,
    task_queue: str,
    warn: Callable[[str], None] = lambda message: None,
) -> list[Deployed]:
    """Create or update one schedule per planned trigger, then remove this flow's schedules whose
    trigger is gone, so the server matches the file."""
    flow = loaded.flow
    done: list[Deployed] = []
    for entry in planned:
        schedule = _schedule(loaded, entry, task_queue)
        done.append(await _create_or_update(client, schedule_id(flow.namespace, flow.id, entry.trigger.id), schedule, warn))
    kept = {entry.schedule_id for entry in done}
    for stale in await flow_schedule_ids(client, loaded):
        if stale not in kept and await _delete(client, stale):
            done.append(Deployed(stale, "removed"))
    return done


def _schedule(loaded: LoadedFlow, planned: Planned, task_queue: str) -> Schedule:
    flow, trigger = loaded.flow, planned.trigger
    metadata = run_metadata(loaded, planned.request)
    memo = {
        **metadata["memo"],
        SCHEDULE_MEMO: {
            "namespace": flow.namespace, "flow_id": flow.id, "trigger_id": trigger.id,
            "cron": trigger.cron, "timezone": trigger.timezone,
        },
    }
    action = ScheduleActionStartWorkflow(
        FlowWorkflow.run,
        planned.request,
        id=f"{flow.id}-{trigger.id}",  # Temporal appends each run's scheduled time
        task_queue=task_queue,
        memo=memo,
        typed_search_attributes=metadata["search_attributes"],
        static_summary=metadata["static_summary"],
    )
    catchup = timedelta(seconds=trigger.catchup_window_s) if trigger.catchup_window_s is not None else None
    return Schedule(
        action=action,
        spec=ScheduleSpec(cron_expressions=[trigger.temporal_cron], time_zone_name=trigger.timezone),
        policy=SchedulePolicy(catchup_window=catchup, pause_on_failure=trigger.pause_on_failure),
        state=ScheduleState(paused=trigger.paused, note=trigger.description),
    )


async def _create_or_update(client: Client, identifier: str, schedule: Schedule, warn: Callable[[str], None]) -> Deployed:
    try:
        return await _put(client, identifier, schedule)
    except RPCError as error:
        if not lacks_search_attributes(error):
            raise
        warn(f"{MISSING_SEARCH_ATTRIBUTES}; scheduled runs go without them ({REGISTER_SEARCH_ATTRIBUTES})")
        assert isinstance(schedule.action, ScheduleActionStartWorkflow)
        schedule.action.typed_search_attributes = TypedSearchAttributes.empty
        return await _put(client, identifier, schedule)


async def _put(client: Client, identifier: str, schedule: Schedule) -> Deployed:
    try:
        await client.create_schedule(identifier, schedule)
        return Deployed(identifier, "created")
    except ScheduleAlreadyRunningError:
        pass

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(identifier).update(replace)
    return Deployed(identifier, "updated")


async def undeploy(client: Client, loaded: LoadedFlow) -> list[str]:
    """Remove every schedule of the flow, including those of triggers renamed or removed since."""
    flow = loaded.flow
    current = [schedule_id(flow.namespace, flow.id, trigger.id) for trigger in schedule_triggers(loaded)]
    removed = []
    for identifier in dict.fromkeys([*current, *await flow_schedule_ids(client, loaded)]):
        if await _delete(client, identifier):
            removed.append(identifier)
    return removed


async def flow_schedule_ids(client: Client, loaded: LoadedFlow) -> list[str]:
    """The server's schedules of this flow (the list is eventually consistent)."""
    return [identifier for identifier, _ in await _flow_schedules(client, loaded)]


async def _flow_schedules(client: Client, loaded: LoadedFlow) -> list[tuple[str, ScheduleDescription]]:
    """Schedules under the flow's id prefix whose memo names the flow (another flow's id may extend
    this one's: `a` and `a.b`), described."""
    flow = loaded.flow
    prefix = schedule_prefix(flow.namespace, flow.id)
    found = []
    async for listed in await client.list_schedules():
        if not listed.id.startswith(prefix):
            continue
        description = await _describe(client, listed.id)
        memo = await _schedule_memo(client, description) if description else {}
        if description and memo.get("namespace") == flow.namespace and memo.get("flow_id") == flow.id:
            found.append((listed.id, description))
    return found


async def _delete(client: Client, identifier: str) -> bool:
    try:
        await client.get_schedule_handle(identifier).delete()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _describe(client: Client, identifier: str) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(identifier).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None  # deleted since it was listed
        raise


async def _schedule_memo(client: Client, description: ScheduleDescription) -> dict[str, Any]:
    """The action memo's `schedule` entry (a described action's memo holds raw payloads, encrypted
    when a payload codec key is set: decoded through the client's converter)."""
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo or SCHEDULE_MEMO not in action.memo:
        return {}
    [value] = await client.data_converter.decode([action.memo[SCHEDULE_MEMO]])
    return value if isinstance(value, dict) else {}


async def list_schedules(client: Client, loaded: LoadedFlow | None = None) -> list[ScheduleRow]:
    """Every flow schedule on the server (those starting the interpreter workflow), or only the
    given flow's; with their next run times."""
    if loaded is not None:
        described = await _flow_schedules(client, loaded)
    else:
        described = []
        async for listed in await client.list_schedules():
            if listed.schedule is not None and getattr(listed.schedule.action, "workflow", None) != WORKFLOW_TYPE:
                continue  # another application's schedule
            description = await _describe(client, listed.id)
            if description is not None:
                described.append((listed.id, description))
    rows = []
    for identifier, description in described:
        action = description.schedule.action
        if not isinstance(action, ScheduleActionStartWorkflow) or action.workflow != WORKFLOW_TYPE:
            continue
        memo = await _schedule_memo(client, description)
        info = description.info
        rows.append(ScheduleRow(
            schedule_id=identifier,
            flow=f"{memo.get('namespace', '?')}.{memo.get('flow_id', '?')}",
            trigger=memo.get("trigger_id", "?"),
            cron=memo.get("cron", "?"),
            timezone=description.schedule.spec.time_zone_name or "UTC",
            paused=description.schedule.state.paused,
            next_runs=[_iso(moment) for moment in info.next_action_times[:NEXT_RUNS_SHOWN]],
            recent_runs=[_iso(result.started_at) for result in info.recent_actions[-NEXT_RUNS_SHOWN:]],
            task_queue=action.task_queue,
        ))
    return sorted(rows, key=lambda row: row.schedule_id)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
