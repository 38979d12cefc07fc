"""Schedule triggers as Temporal Schedules (SPEC §5, §8), end to end on the session's server.

`tflow deploy`, `tflow schedules`, `tflow list` and `tflow undeploy` are real processes against
the session's dev server; the scheduled runs are served by the test's in-process worker. One test,
because a `* * * * *` schedule takes up to a minute to fire: everything is checked around that wait.
Run with `-s` to see how long the first scheduled run took to start and end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from client.runs import wait_result
from tests.support import REPO, cli_env, task_run, tflow, write_flow

FIRST_RUN_WITHIN_S = 70.0
"""A `* * * * *` schedule fires at the next minute boundary: at most 60 s after deploying, plus slack."""

FLOW = """\
id: <<flow_id>>
namespace: tests.schedules
inputs:
  - id: greeting
    type: STRING
  - id: times
    type: INT
    defaults: 2
tasks:
  - id: echo
    type: io.kestra.plugin.core.output.OutputValues
    values:
      greeting: "{{ inputs.greeting }}"
      times: "{{ inputs.times }}"
      scheduled: "{{ trigger.date ?? 'not scheduled' }}"
triggers:
  - id: every-minute
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * *"
    labels: {origin: schedule}
    inputs:
      greeting: hello from the schedule
<<more_triggers>>"""

FAILING = """\
id: <<flow_id>>-failing
namespace: tests.schedules
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: scheduled to fail
triggers:
  - id: every-minute
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * *"
    stopAfter: [FAILED]
"""

NIGHTLY = """\
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
    timezone: Europe/Paris
    disabled: true
    inputs:
      greeting: good night
      times: 7
"""


def flow_text(flow_id: str, more_triggers: str = "") -> str:
    return FLOW.replace("<<flow_id>>", flow_id).replace("<<more_triggers>>", more_triggers)


async def tflow_json(address: str, *args: str, task_queue: str | None = None) -> Any:
    """One `tflow … --json` process (in a thread, so the in-process worker keeps serving)."""
    options = ["--address", address, "--json"] + (["--task-queue", task_queue] if task_queue else [])
    proc = await asyncio.to_thread(
        subprocess.run, tflow(*args, *options), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"tflow {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


async def eventually(probe: Any, timeout: float, accept: Any = bool, interval: float = 1.0) -> Any:
    """The first value of `await probe()` that `accept`s within `timeout` seconds (else the last)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


@pytest.mark.timeout(300)
async def test_deployed_schedule_starts_runs_that_list_and_finish_then_undeploy_removes_it(
    client: Client, temporal_address: str, worker: str, tmp_path: Path
):
    flow_id = f"sched-{uuid.uuid4().hex[:8]}"
    prefix = f"tests.schedules.{flow_id}."
    path = write_flow(tmp_path, flow_text(flow_id, NIGHTLY))

    # Deploy: one schedule per trigger, the disabled one paused; deploying again updates them.
    deployed_at = datetime.now(timezone.utc)
    first = await tflow_json(temporal_address, "deploy", str(path), task_queue=worker)
    assert first["schedules"] == [
        {"schedule_id": prefix + "every-minute", "action": "created"},
        {"schedule_id": prefix + "nightly", "action": "created"},
    ]
    again = await tflow_json(temporal_address, "deploy", str(path), task_queue=worker)
    assert [entry["action"] for entry in again["schedules"]] == ["updated", "updated"]
    failing = write_flow(tmp_path, FAILING.replace("<<flow_id>>", flow_id), "failing.yaml")
    await tflow_json(temporal_address, "deploy", str(failing), task_queue=worker)

    async def listed_schedules() -> dict[str, dict[str, Any]]:
        rows = await tflow_json(temporal_address, "schedules")
        return {row["schedule_id"]: row for row in rows if row["schedule_id"].startswith(prefix)}

    rows = await eventually(listed_schedules, timeout=15, accept=lambda found: len(found) == 2)
    minutely, nightly = rows[prefix + "every-minute"], rows[prefix + "nightly"]
    assert (minutely["cron"], minutely["paused"], minutely["timezone"]) == ("* * * * *", False, "UTC")
    assert (nightly["cron"], nightly["paused"], nightly["timezone"]) == ("@daily", True, "Europe/Paris")
    assert minutely["flow"] == f"tests.schedules.{flow_id}" and minutely["task_queue"] == worker
    next_run = _seconds_from_now(minutely["next_runs"][0])
    assert 0 <= next_run <= 61, minutely["next_runs"]

    # `tflow run` ignores the triggers: the flow runs now, with the inputs given on the command line.
    manual = await tflow_json(temporal_address, "run", str(path), "--input", "greeting=by hand", task_queue=worker)
    assert manual["state"] == "SUCCESS"
    assert task_run(manual, "echo")["outputs"]["values"] == {"greeting": "by hand", "times": "2", "scheduled": "not scheduled"}

    # The schedule fires: its run shows in `tflow list` like any run, and finishes with the trigger's inputs.
    async def scheduled_runs() -> list[dict[str, Any]]:
        runs = await tflow_json(temporal_address, "list", "--flow", flow_id)
        return [run for run in runs if run["run_id"].startswith(f"{flow_id}-every-minute-")]

    listing_lag = 10.0  # polling `tflow list` processes, and visibility catching up
    started = await eventually(scheduled_runs, timeout=FIRST_RUN_WITHIN_S + listing_lag - _since(deployed_at))
    assert started, f"no scheduled run listed {_since(deployed_at):.0f}s after deploying"
    start_delay = (_parse(started[-1]["started_at"]) - deployed_at).total_seconds()
    assert start_delay <= FIRST_RUN_WITHIN_S, started
    assert started[-1]["flow"] == f"tests.schedules.{flow_id}"
    handle = client.get_workflow_handle(started[-1]["run_id"])
    result = await asyncio.wait_for(wait_result(handle), timeout=30)
    print(f"\nfirst scheduled run started {start_delay:.1f}s after deploying, ended at {_since(deployed_at):.1f}s")
    assert result["state"] == "SUCCESS", result
    values = task_run(result, "echo")["outputs"]["values"]
    assert (values["greeting"], values["times"]) == ("hello from the schedule", "2")
    scheduled_for = handle.id.removeprefix(f"{flow_id}-every-minute-")  # Temporal names the run after its time
    assert _parse(values["scheduled"]) == _parse(scheduled_for), (values, handle.id)
    assert _parse(scheduled_for).second == 0
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    memo = await description.memo()
    assert memo["flow_hash"] and memo["labels"] == {"origin": "schedule"}

    # `stopAfter: [FAILED]`: the other flow's schedule fired at the same minute, its run failed, and
    # Temporal paused the schedule.
    # Temporal's scheduler notices the failure when it next looks at its runs (at the latest, at its
    # next action): the clock starts when the failing run ended, and the promise is that no second run
    # of the failing flow ever starts.
    failing_id = f"tests.schedules.{flow_id}-failing.every-minute"
    failing_runs = await eventually(lambda: _runs_of(client, failing_id), timeout=30, accept=bool)
    assert failing_runs, f"{failing_id} started no run"
    failed_end = await eventually(lambda: _close_time(client, failing_runs[0]), timeout=30, accept=bool)
    assert failed_end is not None, f"{failing_runs[0]} did not end"
    next_action = failed_end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    within = (next_action - datetime.now(timezone.utc)).total_seconds() + 15
    paused = await eventually(lambda: _paused(client, failing_id), timeout=max(within, 5), accept=bool)
    assert paused, f"{failing_id} is not paused by its next action after its run failed at {failed_end}"
    assert await _runs_of(client, failing_id) == failing_runs, "the failing flow ran again after its failure"
    assert (await tflow_json(temporal_address, "schedules", str(failing)))[0]["paused"] is True
    await tflow_json(temporal_address, "undeploy", str(failing))

    # A trigger removed from the file: deploying again removes its schedule.
    write_flow(tmp_path, flow_text(flow_id))
    synced = await tflow_json(temporal_address, "deploy", str(path), task_queue=worker)
    assert synced["schedules"] == [
        {"schedule_id": prefix + "every-minute", "action": "updated"},
        {"schedule_id": prefix + "nightly", "action": "removed"},
    ]

    # Undeploy: the schedule is gone from the server and from `tflow schedules`.
    undeployed = await tflow_json(temporal_address, "undeploy", str(path))
    assert undeployed["removed"] == [prefix + "every-minute"]
    with pytest.raises(RPCError) as missing:
        await client.get_schedule_handle(prefix + "every-minute").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert await eventually(listed_schedules, timeout=15, accept=lambda found: not found) == {}


async def _runs_of(client: Client, schedule_id: str) -> list[str]:
    """Ids of the runs a schedule started, oldest first (the schedule's recent actions)."""
    description = await client.get_schedule_handle(schedule_id).describe()
    return [action.action.workflow_id for action in description.info.recent_actions]


async def _close_time(client: Client, run_id: str) -> datetime | None:
    return (await client.get_workflow_handle(run_id).describe()).close_time


async def _paused(client: Client, schedule_id: str) -> bool:
    return (await client.get_schedule_handle(schedule_id).describe()).schedule.state.paused


def _since(moment: datetime) -> float:
    return (datetime.now(timezone.utc) - moment).total_seconds()


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _seconds_from_now(iso: str) -> float:
    return (_parse(iso) - datetime.now(timezone.utc)).total_seconds()
