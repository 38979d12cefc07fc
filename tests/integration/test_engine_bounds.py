"""Nothing a flow does makes the server terminate a run or leaves it stuck (issue 14 B.2, B.4), on a
real server and worker: values computed in the workflow past their bounds fail their task with a
named error, an unexpected error in workflow code fails its task run (the run stays queryable and
cancellable), a run's history stays under Temporal's limits, and a run the server terminated anyway
still reads as its flow's run."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus

from client.runs import live_result, recorded_task_runs, start_run, wait_result
from client.worker import create_worker
from temporal_flows.engine.history import HISTORY_SIZE_BUDGET_BYTES, HISTORY_SIZE_LIMIT_BYTES
from temporal_flows.language.loader import load_flow
from temporal_flows.metadata import PAYLOAD_LIMIT_BYTES
from tests.support import REPO, cli_env, fill, run_flow, run_flows, runs_of, task_run, tflow, write_flow

WIDE = "é"
"""A character the SDK's JSON writes as `\\u00e9`: six bytes of payload per character of text."""


async def ended_by_itself(client: Client, run_id: str) -> None:
    """The run closed on its own (not terminated by the server) and recorded its ledger."""
    handle = client.get_workflow_handle(run_id)
    description = await handle.describe()
    assert description.status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED), description.status
    assert await recorded_task_runs(handle) is not None, "the run recorded its ledger in its history"
    largest = max(payload.ByteSize() for payload in await history_payloads(handle))
    assert largest < PAYLOAD_LIMIT_BYTES


async def history_payloads(handle: Any) -> list[Any]:
    payloads = []
    async for event in handle.fetch_history_events():
        for field in ("activity_task_scheduled_event_attributes", "workflow_execution_completed_event_attributes"):
            if event.HasField(field):
                attributes = getattr(event, field)
                container = attributes.input if field.startswith("activity") else attributes.result
                payloads.extend(container.payloads)
    return payloads


async def test_outputs_computed_in_the_workflow_past_the_bound_fail_their_task(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "pure": f"""
            id: pure
            namespace: tests.bounds
            tasks:
              - id: items
                type: foreach
                values: ["a", "b"]
                tasks:
                  - id: group
                    type: parallel
                    tasks:
                      - id: big
                        type: return
                        allowFailure: true
                        format: "{{{{ '{WIDE}' * 500000 }}}}"
                      - id: fits
                        type: return
                        format: "{{{{ taskrun.value * 500000 }}}}"
              - id: big-values
                type: output_values
                values:
                  text: "{{{{ '{WIDE}' * 200000 }}}}"
              - id: never
                type: return
                format: never
            """,
        "summary": """
            id: summary
            namespace: tests.bounds
            tasks:
              - id: v
                type: return
                format: "{{ 'v' * 300000 }}"
            outputs:
              - id: out
                type: STRING
                value: "{{ outputs.v.value }}"
            """,
    })
    pure = results["pure"]
    assert pure["state"] == "FAILED"
    assert pure["error"]["type"] == "ResultTooLarge" and pure["error"]["task_id"] == "big-values"
    assert "1,200,0" in pure["error"]["message"] and "1,048,576" in pure["error"]["message"]
    assert "outputFiles" in pure["error"]["message"], "the message says what to do instead"
    bigs = runs_of(pure, "big")
    assert [run["state"] for run in bigs] == ["WARNING", "WARNING"], "allowFailure applies to the bound"
    assert all(run["error"]["type"] == "ResultTooLarge" and "`big`" in run["error"]["message"] for run in bigs)
    assert all(run["outputs"] == {} for run in bigs)
    assert sorted(len(run["outputs"]["value"]) for run in runs_of(pure, "fits")) == [500_000, 500_000]
    assert "never" not in [run["task_id"] for run in pure["task_runs"]]
    summary = results["summary"]
    assert summary["state"] == "FAILED" and summary["outputs"] == {}
    assert summary["error"]["type"] == "ResultTooLarge" and summary["error"]["task_id"] is None
    assert "the flow's `outputs`" in summary["error"]["message"] and "262,144" in summary["error"]["message"]
    for result in results.values():
        await ended_by_itself(client, result["run_id"])


TAKES = """
id: takes
namespace: tests.bounds
inputs:
  - id: text
    type: STRING
tasks:
  - id: echo
    type: return
    format: "{{ inputs.text | length }}"
"""


async def test_requests_past_the_payload_limit_fail_their_task(client: Client, worker: str, tmp_path: Path):
    write_flow(tmp_path, TAKES, "takes.yaml")
    results = await run_flows(client, worker, tmp_path, {
        "requests": f"""
            id: requests
            namespace: tests.bounds
            tasks:
              - id: group
                type: parallel
                strategy: wait_all
                tasks:
                  - id: echo
                    type: commands
                    commands: ["echo {{{{ '{WIDE}' * 400000 }}}}"]
                  - id: call
                    type: subflow
                    namespace: tests.bounds
                    flowId: takes
                    inputs:
                      text: "{{{{ '{WIDE}' * 400000 }}}}"
                  - id: sibling
                    type: commands
                    commands: ["echo fine"]
            errors:
              - id: handled
                type: return
                format: "{{{{ tasks.echo.error.type }}}} {{{{ tasks.call.error.type }}}}"
            """,
    })
    result = results["requests"]
    assert result["state"] == "FAILED"
    for task_id, what in (("echo", "its rendered properties"), ("call", "the flow, the flows it may call")):
        error = task_run(result, task_id)["error"]
        assert error["type"] == "RequestTooLarge", error
        assert f"`{task_id}`" in error["message"] and what in error["message"] and "(2,400," in error["message"]
    assert task_run(result, "sibling")["state"] == "SUCCESS"
    assert task_run(result, "handled")["outputs"]["value"] == "RequestTooLarge RequestTooLarge"
    await ended_by_itself(client, result["run_id"])


RENDER_REQUEST = """
id: render_request
namespace: tests.bounds
tasks:
  - id: produce
    type: commands
    commands:
      - >-
        python3 -c "import json; print('::' + json.dumps({'outputs': {'data': 'x' * 200000}}) + '::')"
<<wide>>
  - id: reader
    type: return
    format: "{{ outputs | length }} {{ outputs.produce.vars.data | length }}"
"""


async def test_a_worker_render_request_past_the_payload_limit_fails_its_task(client: Client, task_queue: str, tmp_path: Path):
    # The run holds a stored value, so `reader`'s templates render on a worker with the values they
    # read: all outputs (read as a whole), three of them ~900 KB each.
    wide = "".join(f"\n  - {{id: wide{index}, type: return, format: \"{{{{ '{WIDE}' * 150000 }}}}\"}}" for index in range(3))
    flow = write_flow(tmp_path, fill(RENDER_REQUEST, wide=wide))
    async with create_worker(client, task_queue, graceful_shutdown_s=5, storage_dir=tmp_path / "storage"):
        result = await run_flow(client, flow, task_queue)
    assert task_run(result, "produce")["outputs"]["vars"]["data"].get("$tflowRef"), "the value was stored"
    error = task_run(result, "reader")["error"]
    assert error["type"] == "RequestTooLarge" and "rendering templates of reader" in error["message"], error
    await ended_by_itself(client, result["run_id"])


async def test_requests_ready_at_once_are_spread_over_workflow_tasks(client: Client, worker: str, tmp_path: Path):
    # Three activities and three child runs of ~900 KB requests each are ready in the same workflow
    # task: together they would pass the 4 MiB the server takes in one workflow task's completion
    # (it refused it again and again).
    write_flow(tmp_path, TAKES, "takes.yaml")
    commands = "".join(f"""
              - id: t{index}
                type: commands
                commands: ["echo {{{{ '{WIDE}' * 150000 }}}} | wc -c"]""" for index in range(3))
    calls = "".join(f"""
              - id: call{index}
                type: subflow
                namespace: tests.bounds
                flowId: takes
                inputs:
                  text: "{{{{ '{WIDE}' * 150000 }}}}\"""" for index in range(3))
    flow = write_flow(tmp_path, f"""
        id: spread
        namespace: tests.bounds
        tasks:
          - id: group
            type: parallel
            tasks:{commands}{calls}
        """)
    handle = await start_run(client, load_flow(flow), task_queue=worker)
    result = await asyncio.wait_for(wait_result(handle), timeout=60)
    assert result["state"] == "SUCCESS", result["error"]
    assert [run["outputs"]["state"] for run in runs_of(result, "call0")] == ["SUCCESS"]
    spread = [event async for event in handle.fetch_history_events()
              if event.HasField("timer_started_event_attributes")]
    assert spread, "some requests waited for the next workflow task"
    await ended_by_itself(client, result["run_id"])


async def test_long_error_messages_are_cut_in_the_ledger_and_the_summary(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "long": """
            id: long
            namespace: tests.bounds
            tasks:
              - id: boom
                type: fail
                errorMessage: "{{ 'e' * 100000 }}"
            """,
    })
    result = results["long"]
    for error in (result["error"], task_run(result, "boom")["error"]):
        assert error["message"].startswith("e" * 8192)
        assert error["message"].endswith("... [91,808 more characters left out]")


async def test_the_history_stays_under_temporals_limit(client: Client, worker: str, tmp_path: Path):
    # 60 items of 999,012 bytes of outputs each: the ledger would reach 60 MB, over the 50 MiB at
    # which the server terminates a run; no task run starts past the 40 MiB budget instead.
    items = json.dumps([str(index) for index in range(60)])
    results = await run_flows(client, worker, tmp_path, {
        "heavy": f"""
            id: heavy
            namespace: tests.bounds
            tasks:
              - id: each
                type: foreach
                values: {items}
                tasks:
                  - id: blob
                    type: return
                    format: "{{{{ 'x' * 999000 }}}}"
            finally:
              - id: last
                type: return
                format: done
            """,
    })
    result = results["heavy"]
    assert result["state"] == "FAILED"
    assert result["error"]["type"] == "HistoryTooLarge", result["error"]
    blobs = runs_of(result, "blob")
    done = [run for run in blobs if run["state"] == "SUCCESS"]
    assert 40 <= len(done) <= 43, "tasks start while the ledger is under the 40 MiB budget"
    assert len(done) * 999_000 > HISTORY_SIZE_BUDGET_BYTES - 2 * 999_000, "and until then"
    assert blobs[len(done)]["error"]["type"] == "HistoryTooLarge" and len(blobs) == len(done) + 1
    assert task_run(result, "last")["state"] == "FAILED", "past the budget even `finally` cannot start"
    handle = client.get_workflow_handle(result["run_id"])
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.FAILED
    assert description.raw_description.workflow_execution_info.history_size_bytes < HISTORY_SIZE_LIMIT_BYTES
    assert await recorded_task_runs(handle) is not None


BROKEN_HOOK = """
    id: broken
    namespace: tests.bounds
    tasks:
      - id: group
        type: parallel
        strategy: wait_all
        tasks:
          - id: nap
            type: sleep
            duration: "{{ 'PT99999999999999999H' }}"
          - id: long
            type: commands
            commands: ["sleep 60"]
    finally:
      - id: cleanup
        type: return
        format: cleaned
    """
"""A sleep whose duration the SDK cannot turn into a timer: its ValueError used to fail the workflow
task again and again, the run stuck, unqueryable and deaf to a cancel."""


async def test_an_unexpected_error_in_workflow_code_fails_its_task_run_and_the_run_stays_cancellable(
    client: Client, worker: str, temporal_address: str, tmp_path: Path,
):
    handle = await start_run(client, load_flow(write_flow(tmp_path, BROKEN_HOOK)), task_queue=worker)
    live = await until(lambda: live_result(handle), lambda seen: _state_of(seen, "nap") == "FAILED", timeout=15)
    nap = task_run(live, "nap")
    assert nap["error"] == {"type": "ValueError", "message": nap["error"]["message"], "task_id": "nap"}
    assert "out of range" in nap["error"]["message"]
    assert live["state"] == "RUNNING" and _state_of(live, "long") == "RUNNING"
    status = await asyncio.create_subprocess_exec(
        *tflow("status", handle.id, "--address", temporal_address, "--json"), cwd=REPO, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # not subprocess.run: the test's worker answers the query on this event loop
    stdout, stderr = await asyncio.wait_for(status.communicate(), timeout=60)
    assert status.returncode == 0, stderr.decode()
    assert _state_of(json.loads(stdout), "nap") == "FAILED"
    cancelled_at = time.monotonic()
    await handle.cancel()
    result = await wait_result(handle)
    assert time.monotonic() - cancelled_at < 10, "the cancel reaches the run at once"
    assert result["state"] == "CANCELLED"
    assert task_run(result, "long")["state"] == "CANCELLED"
    assert task_run(result, "nap")["error"]["type"] == "ValueError"
    assert task_run(result, "cleanup")["state"] == "SUCCESS"


async def test_an_unexpected_error_ends_the_run_failed_with_its_type(client: Client, worker: str, tmp_path: Path):
    flow = BROKEN_HOOK.replace('commands: ["sleep 60"]', 'commands: ["sleep 0.2"]')
    started = time.monotonic()
    result = (await run_flows(client, worker, tmp_path, {"broken": flow}))["broken"]
    assert time.monotonic() - started < 15
    assert result["state"] == "FAILED"
    assert result["error"]["type"] == "ValueError" and result["error"]["task_id"] == "nap"
    assert task_run(result, "long")["state"] == "SUCCESS", "wait_all lets the sibling finish"
    assert task_run(result, "cleanup")["state"] == "SUCCESS"
    await ended_by_itself(client, result["run_id"])


async def test_a_run_started_with_an_input_that_is_no_flow_fails_at_once(client: Client, worker: str):
    # Started by hand (Temporal's CLI or UI) rather than by tflow: it used to fail its first workflow
    # task again and again.
    handle = await client.start_workflow(
        "FlowWorkflow", {"flow": {"id": "x", "tasks": "not a list"}}, id=f"no-flow-{worker}", task_queue=worker,
    )
    result = await asyncio.wait_for(wait_result(handle), timeout=15)
    assert result["state"] == "FAILED" and result["task_runs"] == []
    assert result["error"]["type"] == "InvalidRunInput" and result["error"]["task_id"] is None
    assert "tflow run" in result["error"]["message"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_a_run_the_server_terminated_still_reads_as_its_flows_run(client: Client, task_queue: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: terminated
        namespace: tests.bounds
        tasks:
          - id: t
            type: return
            format: never run
        """)
    handle = await start_run(client, load_flow(flow), task_queue=task_queue)  # no worker polls this queue
    await handle.terminate("stopped by the test")
    result = await wait_result(handle)
    assert result["flow"] == {"namespace": "tests.bounds", "id": "terminated"}
    assert result["state"] == "FAILED" and result["error"]["type"] == "Terminated"
    assert "terminated" in result["error"]["message"]
    assert result["run_id"] == handle.id and result["task_runs"] == []
    assert isinstance(result["duration_s"], float)


def _state_of(result: dict[str, Any], task_id: str) -> str | None:
    runs = runs_of(result, task_id)
    return runs[0]["state"] if runs else None


async def until(read: Any, done: Any, timeout: float) -> dict[str, Any]:
    """`read()` again until `done(value)`; the last value (the test's asserts say what was missing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)
