"""`tflow replay` through the real CLI (separate processes) against the session's dev server, the
runs made by a real in-process worker: a flow with a for-each inside a parallel group and a subflow
replays OK by run id and with `--all --since` (its child run too, once), so does a paused run, a history the `temporal`
CLI exported replays offline with `--history` and a copy with an edited event diverges at that
event; an encrypted run replays with the key and says why not without it or with another key; an
unreachable server exits 3, bad arguments 2."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from client.codec import KEY_ENV
from client.connection import connect
from client.devserver import free_port
from client.temporal_cli import find_temporal_cli
from client.worker import create_worker
from client.runs import start_run, summary
from temporal_flows.language.loader import load_flow
from tests.support import REPO, cli_env, run_flow, task_run, tflow, write_flow

LISTED_WITHIN_S = 15.0
"""Visibility lags a run's history a little."""

CHILD = """
id: replay-child-<<suffix>>
namespace: e2e.replay
inputs:
  - id: name
    type: STRING
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.name }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.greet.value }}"
"""

PARENT = """
id: replay-parent-<<suffix>>
namespace: e2e.replay
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: each
        type: io.kestra.plugin.core.flow.ForEach
        values: ["a", "b", "c"]
        concurrencyLimit: 2
        tasks:
          - id: echo
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner: {type: io.kestra.plugin.core.runner.Process}
            commands: ["echo {{ taskrun.value }}"]
      - id: alone
        type: io.kestra.plugin.scripts.shell.Commands
        taskRunner: {type: io.kestra.plugin.core.runner.Process}
        commands: ["true"]
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: e2e.replay
    flowId: replay-child-<<suffix>>
    inputs:
      name: "{{ flow.id }}"
"""

PAUSED = """
id: replay-paused-<<suffix>>
namespace: e2e.replay
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: say
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
  - id: hold
    type: io.kestra.plugin.core.flow.Pause
"""


async def tflow_cli(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *tflow(*args), cwd=REPO, env=cli_env(**env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert "Traceback" not in stderr.decode() and "internal error" not in stderr.decode(), stderr.decode()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def run_parent(client: Client, task_queue: str, folder: Path) -> tuple[dict[str, Any], str]:
    """The parent flow run to its end on `task_queue`; its result and its child run's id."""
    suffix = uuid.uuid4().hex[:8]
    write_flow(folder, CHILD.replace("<<suffix>>", suffix), "child.yaml")
    parent = write_flow(folder, PARENT.replace("<<suffix>>", suffix), "parent.yaml")
    result = await run_flow(client, parent, task_queue)
    assert result["state"] == "SUCCESS", result["error"]
    assert len([run for run in result["task_runs"] if run["task_id"] == "echo"]) == 3
    return result, task_run(result, "call")["outputs"]["executionId"]


async def event_count(client: Client, run_id: str) -> int:
    return len((await client.get_workflow_handle(run_id).fetch_history()).events)


async def wait_listed(client: Client, *run_ids: str) -> None:
    query = " OR ".join(f"WorkflowId = '{run_id}'" for run_id in run_ids)
    deadline = time.monotonic() + LISTED_WITHIN_S
    while {execution.id async for execution in client.list_workflows(query)} != set(run_ids):
        assert time.monotonic() < deadline, f"visibility does not list {run_ids}"
        await asyncio.sleep(0.2)


async def test_a_run_and_its_child_replay_by_run_id_and_with_all_since(
        client: Client, worker: str, temporal_address: str, tmp_path: Path):
    result, child_id = await run_parent(client, worker, tmp_path)
    run_id = result["run_id"]
    events = {run_id: await event_count(client, run_id), child_id: await event_count(client, child_id)}

    code, stdout, stderr = await tflow_cli("replay", run_id, "--address", temporal_address)
    assert code == 0, stdout + stderr
    assert stdout.splitlines() == [
        f"{run_id}  {events[run_id]} events  OK", f"{child_id}  {events[child_id]} events  OK",
        "Replayed 2 runs: 2 OK, 0 diverged.",
    ]
    assert stderr == "", "the replayer's own log lines stay out of the way"

    await wait_listed(client, run_id, child_id)
    code, stdout, stderr = await tflow_cli("replay", "--all", "--since", "1h", "--json", "--address", temporal_address)
    document = json.loads(stdout)
    assert code == (0 if document["failed"] == 0 else 1), stdout + stderr  # other tests' runs may not replay here
    replayed = [run["run_id"] for run in document["runs"]]
    assert replayed.count(run_id) == 1 and replayed.count(child_id) == 1, "the child is listed and started: once"
    assert {run["run_id"]: run["events"] for run in document["runs"] if run["run_id"] in events} == events
    # The session's server holds other tests' runs too (encrypted ones that this process cannot read):
    # this run and its child replay OK, and every run listed is counted once.
    assert all(run["ok"] and run["error"] is None for run in document["runs"] if run["run_id"] in events)
    assert document["ok"] + document["failed"] == len(replayed)

    flow_id = result["flow"]["id"]
    code, stdout, stderr = await tflow_cli("replay", "--all", "--since", "1h", "--flow", flow_id, "--json",
                                           "--address", temporal_address)
    assert code == 0, stdout + stderr
    assert [run["run_id"] for run in json.loads(stdout)["runs"]] == [run_id, child_id], "the child through its parent"

    code, stdout, stderr = await tflow_cli("replay", "--all", "--flow", flow_id, "--limit", "1", "--address", temporal_address)
    assert code == 0, stdout + stderr
    assert stdout.splitlines() == [f"{run_id}  {events[run_id]} events  OK", "Replayed 1 run (--limit 1 reached): 1 OK, 0 diverged."]

    code, stdout, stderr = await tflow_cli("replay", "--all", "--flow", f"{flow_id}-none", "--address", temporal_address)
    assert (code, stdout) == (0, "No runs to replay.\n"), stderr


async def test_an_open_run_replays_as_far_as_it_went(client: Client, worker: str, temporal_address: str, tmp_path: Path):
    flow = write_flow(tmp_path, PAUSED.replace("<<suffix>>", uuid.uuid4().hex[:8]), "paused.yaml")
    handle = await start_run(client, load_flow(flow), task_queue=worker)
    deadline = time.monotonic() + LISTED_WITHIN_S
    while (await summary(handle))["state"] != "PAUSED":
        assert time.monotonic() < deadline, "the run did not pause"
        await asyncio.sleep(0.1)
    try:
        events = await event_count(client, handle.id)
        code, stdout, stderr = await tflow_cli("replay", handle.id, "--address", temporal_address)
        assert code == 0, stdout + stderr
        assert stdout.splitlines()[0] == f"{handle.id}  {events} events  OK"
        assert (await summary(handle))["state"] == "PAUSED", "replaying leaves the run as it was"
    finally:
        await handle.cancel()


def renamed_activity(document: dict[str, Any]) -> int:
    """Rename the type of the history's last scheduled activity; its event id."""
    scheduled = [event for event in document["events"] if "activityTaskScheduledEventAttributes" in event][-1]
    scheduled["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "tflow.renamed"
    return int(scheduled["eventId"])


async def test_an_exported_history_replays_offline_and_an_edited_copy_diverges_at_the_edit(
        client: Client, worker: str, temporal_address: str, tmp_path: Path):
    result, _ = await run_parent(client, worker, tmp_path)
    exported = tmp_path / "exported.json"
    show = await asyncio.create_subprocess_exec(
        str(find_temporal_cli(obtain=False)), "workflow", "show", "--workflow-id", result["run_id"], "--output", "json",
        "--address", temporal_address, stdout=asyncio.subprocess.PIPE, env=cli_env())
    exported.write_bytes((await show.communicate())[0])
    assert show.returncode == 0
    document = json.loads(exported.read_text())
    edited = copy.deepcopy(document)
    diverging = renamed_activity(edited)
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    recorded = REPO / "tests" / "histories" / "subflow.v4.json"

    code, stdout, stderr = await tflow_cli(
        "replay", "--history", str(exported), "--history", str(tmp_path / "edited.json"), "--history", str(recorded))
    assert code == 1, stdout + stderr
    lines = stdout.splitlines()
    assert lines[0] == f"{exported}  {len(document['events'])} events  OK"
    assert lines[1].startswith(f"{tmp_path / 'edited.json'}  {len(document['events'])} events  "
                               f"DIVERGED at event {diverging} (ActivityTaskScheduled): ")
    assert "'tflow.renamed'" in lines[1], "what the history holds and what the code did instead"
    assert lines[2:] == [f"{recorded}  71 events  OK", "Replayed 3 runs: 2 OK, 1 diverged."]

    code, stdout, _ = await tflow_cli("replay", "--history", str(tmp_path / "edited.json"), "--json")
    assert code == 1
    [run] = json.loads(stdout)["runs"]
    assert (run["ok"], run["event_id"], run["event_type"]) == (False, diverging, "ActivityTaskScheduled")
    assert run["run_id"] == result["run_id"], "the run id the history was recorded under, told from its child's id"


async def test_an_encrypted_run_replays_with_its_key_and_says_why_not_without_it_or_with_another(
        client: Client, temporal_address: str, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(KEY_ENV, key)
    secure = await connect(temporal_address)
    monkeypatch.delenv(KEY_ENV)
    async with create_worker(secure, task_queue, graceful_shutdown_s=5):
        result, child_id = await run_parent(secure, task_queue, tmp_path)
    run_id = result["run_id"]

    code, stdout, stderr = await tflow_cli("replay", run_id, "--json", "--address", temporal_address, **{KEY_ENV: key})
    assert code == 0, stdout + stderr
    assert [(run["run_id"], run["ok"]) for run in json.loads(stdout)["runs"]] == [(run_id, True), (child_id, True)]

    code, stdout, stderr = await tflow_cli("replay", run_id, "--address", temporal_address)
    assert code == 1, stdout + stderr
    assert f"{run_id}  " in stdout and f"FAILED: its payloads are encrypted: set {KEY_ENV}" in stdout

    other = base64.b64encode(os.urandom(32)).decode()
    code, stdout, stderr = await tflow_cli("replay", run_id, "--address", temporal_address, **{KEY_ENV: other})
    assert code == 1, stdout + stderr
    assert "FAILED: cannot decrypt its payloads: a payload is encrypted with key id" in stdout, "a wrong key is no divergence"


async def test_an_unreachable_server_exits_3_and_bad_arguments_exit_2(tmp_path: Path):
    nowhere = f"127.0.0.1:{free_port()}"
    for args in (("some-run",), ("--all", "--since", "7d")):
        code, _, stderr = await tflow_cli("replay", *args, "--address", nowhere)
        assert code == 3 and "cannot reach Temporal" in stderr, stderr
    for args, message in [
        ((), "nothing to replay"),
        (("a-run", "--all"), "RUN_ID and --all together"),
        (("a-run", "--flow", "f"), "--flow selects runs for --all"),
        (("--all", "--since", "yesterday"), "--since: expected a duration"),
        (("--history", str(tmp_path / "missing.json")), "missing.json: cannot read it"),
    ]:
        code, _, stderr = await tflow_cli("replay", *args, "--address", nowhere)
        assert code == 2 and message in stderr, (args, stderr)
