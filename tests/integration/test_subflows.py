"""Subflows on a real server (SPEC §3.2 `subflow`, Kestra's Subflow): the called flow runs as a
Temporal child workflow of the run; its outputs and state come back to the calling task as
Kestra's `transmitFailed` says; a timeout of the task cancels the child; the flows are found
before the start (`--flows-dir`), and a missing one stops `tflow run` with exit code 2."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from client.runs import wait_result
from tests.support import REPO, cli_env, duration, run_flow, runs_of, task_ids, task_run, tflow, write_flow

CHILD = """
id: child
namespace: tests.sub
inputs:
  - id: name
    type: STRING
tasks:
  - id: greet
    type: return
    format: "hello {{ inputs.name }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.greet.value }}"
"""

LABELLED = """
id: labelled
namespace: tests.sub
tasks:
  - id: step
    type: return
    format: "{{ labels.team }}/{{ labels.via }}"
"""

FAILING = """
id: failing
namespace: tests.sub
tasks:
  - id: boom
    type: fail
    errorMessage: "child went boom"
"""

SLOW = """
id: slow
namespace: tests.sub
tasks:
  - id: nap
    type: sleep
    duration: "<<seconds>>s"
"""


def flows(folder: Path, **texts: str) -> None:
    for name, text in texts.items():
        write_flow(folder, text, f"{name}.yaml")


async def child_result(client: Client, execution_id: str) -> dict[str, Any]:
    return await wait_result(client.get_workflow_handle(execution_id))


async def test_child_outputs_reach_later_tasks_and_the_child_is_a_child_workflow(client: Client, worker: str, tmp_path: Path):
    flows(tmp_path, child=CHILD, labelled=LABELLED)
    parent = write_flow(tmp_path, """
        id: parent
        namespace: tests.sub
        labels:
          team: core
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: tests.sub
            flowId: child
            inputs:
              name: "{{ flow.id }}"
          - id: older
            type: subflow
            namespace: tests.sub
            flow_id: labelled
            inheritLabels: true
            labels:
              - key: via
                value: "{{ flow.id }}"
            outputs:
              got: "{{ outputs.step.value }}"
          - id: use
            type: return
            format: "{{ outputs.call.outputs.greeting }} / {{ outputs.call.state }} / {{ outputs.older.outputs.got }}"
    """, "parent.yaml")
    result = await run_flow(client, parent, worker)

    assert result["state"] == "SUCCESS", result["error"]
    assert task_ids(result) == ["call", "older", "use"], "the child's task runs stay in the child run"
    assert task_run(result, "use")["outputs"]["value"] == "hello parent / SUCCESS / core/parent"
    call = task_run(result, "call")["outputs"]
    assert call["outputs"] == {"greeting": "hello parent"} and call["state"] == "SUCCESS"

    child_id = call["executionId"]
    description = await client.get_workflow_handle(child_id).describe()
    assert description.parent_id == result["run_id"], "the subflow runs as a child workflow of the run"
    parent_attributes = (await client.get_workflow_handle(result["run_id"]).describe()).search_attributes
    if parent_attributes.get("TflowFlowId"):  # the server knows them: the child is listed under its own flow
        assert description.search_attributes.get("TflowFlowId") == ["child"]
    child = await child_result(client, child_id)
    assert child["state"] == "SUCCESS" and task_ids(child) == ["greet"]
    assert child["outputs"] == {"greeting": "hello parent"}


async def test_failed_child_fails_the_task_with_transmit_failed_only(client: Client, worker: str, tmp_path: Path):
    flows(tmp_path, failing=FAILING, child=CHILD)
    parent = write_flow(tmp_path, """
        id: parent-of-failing
        namespace: tests.sub
        tasks:
          - id: both
            type: parallel
            tasks:
              - id: strict
                type: subflow
                namespace: tests.sub
                flowId: failing
                transmitFailed: true
                retry:
                  type: constant
                  interval: PT0.1S
                  maxAttempt: 2
              - id: lenient
                type: subflow
                namespace: tests.sub
                flowId: failing
                transmitFailed: false
              - id: no-input
                type: subflow
                namespace: tests.sub
                flowId: child
              - id: each
                type: foreach
                values: ["a", "b"]
                tasks:
                  - id: per-item
                    type: subflow
                    namespace: tests.sub
                    flowId: child
                    inputs:
                      name: "{{ taskrun.value }}"
    """, "parent.yaml")
    result = await run_flow(client, parent, worker)

    assert result["state"] == "FAILED"
    strict = task_run(result, "strict")
    assert strict["state"] == "FAILED"
    assert strict["error"]["type"] == "SubflowFailed" and "child went boom" in strict["error"]["message"]
    assert strict["outputs"]["state"] == "FAILED"
    assert strict["attempts"] == 2 and strict["outputs"]["executionId"].endswith("-2"), "each attempt is a new child run"
    lenient = task_run(result, "lenient")
    assert lenient["state"] == "SUCCESS" and lenient["outputs"]["state"] == "FAILED", "without transmitFailed the task succeeds"
    no_input = task_run(result, "no-input")
    assert no_input["state"] == "FAILED" and "`name`" in no_input["error"]["message"], "the child checks its own inputs"
    child = await child_result(client, strict["outputs"]["executionId"])
    assert child["state"] == "FAILED" and task_run(child, "boom")["state"] == "FAILED"

    items = {run["value"]: run for run in runs_of(result, "per-item")}
    assert {value: run["outputs"]["outputs"]["greeting"] for value, run in items.items()} == {"a": "hello a", "b": "hello b"}
    assert items["a"]["outputs"]["executionId"] != items["b"]["outputs"]["executionId"]


async def test_task_timeout_cancels_the_child(client: Client, worker: str, tmp_path: Path):
    flows(tmp_path, slow=SLOW.replace("<<seconds>>", "60"))
    parent = write_flow(tmp_path, """
        id: impatient
        namespace: tests.sub
        tasks:
          - id: call
            type: subflow
            namespace: tests.sub
            flowId: slow
            timeout: 1s
    """, "parent.yaml")
    result = await run_flow(client, parent, worker)

    call = task_run(result, "call")
    assert result["state"] == "FAILED" and call["state"] == "FAILED" and call["error"]["type"] == "Timeout"
    assert duration(call) < 4, f"the timeout (1 s) ended the task after {duration(call)} s"
    child = await child_result(client, call["outputs"]["executionId"])
    assert child["state"] == "CANCELLED" and task_run(child, "nap")["state"] == "CANCELLED"


async def test_a_cancelled_task_cancels_its_child(client: Client, worker: str, tmp_path: Path):
    flows(tmp_path, slow=SLOW.replace("<<seconds>>", "60"))
    parent = write_flow(tmp_path, """
        id: fail-fast
        namespace: tests.sub
        tasks:
          - id: group
            type: parallel
            strategy: fail_fast
            tasks:
              - id: call
                type: subflow
                namespace: tests.sub
                flowId: slow
              - id: later-failure
                type: sequential
                tasks:
                  - id: wait
                    type: sleep
                    duration: 1s
                  - id: boom
                    type: fail
    """, "parent.yaml")
    result = await run_flow(client, parent, worker)

    call = task_run(result, "call")
    assert result["state"] == "FAILED" and call["state"] == "CANCELLED"
    assert duration(call) < 4, f"the sibling failed after 1 s; the task ended after {duration(call)} s"
    child = await child_result(client, call["outputs"]["executionId"])
    assert child["state"] == "CANCELLED" and task_run(child, "nap")["state"] == "CANCELLED"


async def test_without_wait_the_task_succeeds_at_once_and_the_child_goes_on(client: Client, worker: str, tmp_path: Path):
    flows(tmp_path, slow=SLOW.replace("<<seconds>>", "2"))
    parent = write_flow(tmp_path, """
        id: fire-and-forget
        namespace: tests.sub
        tasks:
          - id: call
            type: subflow
            namespace: tests.sub
            flowId: slow
            wait: false
    """, "parent.yaml")
    result = await run_flow(client, parent, worker)

    assert result["state"] == "SUCCESS" and result["duration_s"] < 1.5
    child = await child_result(client, task_run(result, "call")["outputs"]["executionId"])
    assert child["state"] == "SUCCESS", "the child outlives its parent (parent close policy ABANDON)"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tflow(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)


async def test_flows_dir_finds_subflows_elsewhere_and_a_missing_one_starts_nothing(
    client: Client, temporal_address: str, worker: str, tmp_path: Path
):
    library, caller = tmp_path / "library", tmp_path / "caller"
    (library / "nested").mkdir(parents=True)
    caller.mkdir()
    flows(library / "nested", child=CHILD)  # found recursively
    write_flow(library, "id: [not, a flow", "broken.yaml")  # skipped quietly while searching
    parent = write_flow(caller, """
        id: cli-parent
        namespace: tests.sub
        tasks:
          - id: call
            type: subflow
            namespace: tests.sub
            flowId: child
            inputs:
              name: cli
    """, "parent.yaml")
    common = ["--json", "--address", temporal_address, "--task-queue", worker]

    missing_id = f"missing-{uuid.uuid4().hex[:8]}"
    done = await asyncio.to_thread(run_cli, "run", str(parent), *common, "--id", missing_id)
    assert done.returncode == 2, done.stderr
    assert f"{parent}:7:" in done.stderr and "`tests.sub.child` not found" in done.stderr and str(caller) in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(RPCError):
        await client.get_workflow_handle(missing_id).describe()

    done = await asyncio.to_thread(run_cli, "run", str(parent), *common, "--flows-dir", str(library))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "SUCCESS"
    assert task_run(result, "call")["outputs"]["outputs"] == {"greeting": "hello cli"}
