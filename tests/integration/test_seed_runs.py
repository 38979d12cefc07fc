"""Seed 001's examples on a real Temporal server: states, Kestra's task-run counting, timing,
and what the Temporal UI shows (activity summaries, workflow summary, search attributes)."""

from __future__ import annotations

import json

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from temporal_flows.language.loader import load_flow
from temporal_flows.metadata import search_attribute_keys
from client.runs import start_run, wait_result
from tests.support import REPO, duration, run_flow, task_run


async def test_parallel_example_runs_three_at_a_time(client: Client, worker: str):
    result = await run_flow(client, REPO / "examples" / "parallel.yaml", worker)
    assert result["state"] == "SUCCESS"
    assert len(result["task_runs"]) == 8
    parent = task_run(result, "parent")
    # 6 × `sleep 1`, 3 at a time: two waves.
    assert 1.9 <= duration(parent) < 3.5, duration(parent)
    children = [run for run in result["task_runs"] if run["parent_id"] == parent["id"]]
    assert [run["task_id"] for run in children] == ["t1", "t2", "t3", "t4", "t5", "t6"]
    assert all(run["state"] == "SUCCESS" and run["attempts"] == 1 for run in children)
    last = task_run(result, "last")
    assert last["outputs"]["value"].startswith("last > 20")
    assert last["started_at"] >= parent["ended_at"]


async def test_sequential_example_runs_two_chains_side_by_side(client: Client, worker: str):
    result = await run_flow(client, REPO / "examples" / "sequential.yaml", worker)
    assert result["state"] == "SUCCESS"
    assert len(result["task_runs"]) == 10
    parent = task_run(result, "parent")
    assert 2.9 <= duration(parent) < 4.5, duration(parent)
    for chain in (["t1", "t2", "t3"], ["t4", "t5", "t6"]):
        runs = [task_run(result, task_id) for task_id in chain]
        for before, after in zip(runs, runs[1:]):
            assert after["started_at"] >= before["ended_at"]
    assert task_run(result, "t1")["parent_id"] == task_run(result, "seq1")["id"]


async def test_history_reads_like_the_flow(client: Client, worker: str):
    loaded = load_flow(REPO / "examples" / "sequential.yaml")
    handle = await start_run(client, loaded, task_queue=worker)
    await wait_result(handle)
    summaries = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            summaries.append(json.loads(event.user_metadata.summary.data))
    # Every task reads as its id; the run ends by keeping its ledger in the history (one page here).
    assert sorted(summaries) == ["ledger 1/1", "t1", "t2", "t3", "t4", "t5", "t6"]

    description = await handle.describe()
    assert await description.static_summary() == "company.team.sequential: " + loaded.flow.description.strip()
    flow_key, namespace_key = search_attribute_keys()
    assert description.typed_search_attributes.get(flow_key) == "sequential"
    assert description.typed_search_attributes.get(namespace_key) == "company.team"
    assert description.memo and (await description.memo_value("flow_hash")) == loaded.flow.digest()
