"""The `labels` task (Kestra's io.kestra.plugin.core.execution.Labels) on the session's real dev
server: labels set while the run runs are seen by later templates, held in the run's memo and in its
`TflowLabels` search attribute (so a visibility query finds the run); both forms (a mapping, a list
of `{key, value}`) and text rendering to a JSON mapping; labels set inside an each_parallel inside a
parallel all arrive; a bad label (a list value, a `system.` name, over Temporal's 2048-byte bound)
fails the task naming it and changes no label; exactly at the bound it is accepted and searchable."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from client.runs import start_run, wait_result
from temporal_flows.language.loader import load_flow
from temporal_flows.metadata import labels_search_attribute_key
from temporal_flows.tasks.pure.labels import MAX_LABELS_BYTES
from tests.support import fill, task_run, write_flow

VISIBLE_WITHIN_S = 10.0
"""Visibility is updated after the run's history; a query sees a change within this."""

STAGED = """
id: staged-<<suffix>>
namespace: tests.labels
labels:
  team: data
  stage: none
inputs:
  - id: x
    type: STRING
tasks:
  - id: before
    type: return
    format: "{{ labels.stage }}"
  - id: set
    type: io.kestra.plugin.core.execution.Labels
    labels:
      stage: "{{ inputs.x }}"
      count: 3
  - id: as_list
    type: io.kestra.core.tasks.executions.Labels
    labels:
      - key: "order_{{ inputs.x }}"
        value: "{{ labels.stage }}-1"
  - id: nested
    type: parallel
    tasks:
      - id: each
        type: each_parallel
        values: '["a", "b", "c"]'
        tasks:
          - id: per_item
            type: labels
            labels:
              "item_{{ taskrun.value }}": "{{ taskrun.value | upper }}"
      - id: side
        type: log
        message: "{{ labels.team }}"
  - id: after
    type: return
    format: "{{ labels.stage }}/{{ labels['order_' ~ inputs.x] }}/{{ labels.count }}/{{ labels.item_a }}{{ labels.item_b }}{{ labels.item_c }}"
"""

FROM_JSON = """
id: json-labels-<<suffix>>
namespace: tests.labels
labels:
  team: data
inputs:
  - id: given
    type: STRING
tasks:
  - id: set
    type: labels
    labels: "{{ inputs.given }}"
  - id: after
    type: return
    format: "{{ labels | length }}"
"""


async def run(client: Client, path: Path, task_queue: str, **options: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The run's result, its memo labels and its `TflowLabels` terms once the run has ended."""
    handle = await start_run(client, load_flow(path), task_queue=task_queue, **options)
    result = await wait_result(handle)
    description = await handle.describe()
    terms = list(description.typed_search_attributes.get(labels_search_attribute_key()) or [])
    return result, await description.memo_value("labels"), terms


async def found(client: Client, query: str, count: int = 1) -> list[str]:
    """Run ids the query finds, waiting until it finds `count` (visibility lags the history a little)."""
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    while True:
        ids = [execution.id async for execution in client.list_workflows(query)]
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.1)


async def test_labels_set_at_run_time_are_seen_by_templates_memo_and_search(client: Client, worker: str, tmp_path: Path):
    suffix = uuid.uuid4().hex[:8]
    path = write_flow(tmp_path, fill(STAGED, suffix=suffix))
    (prod, prod_memo, prod_terms), (dev, _, _) = await asyncio.gather(
        run(client, path, worker, inputs={"x": f"prod{suffix}"}),
        run(client, path, worker, inputs={"x": f"dev{suffix}"}),
    )
    assert prod["state"] == "SUCCESS", prod["error"]
    assert task_run(prod, "before")["outputs"]["value"] == "none"  # the flow's label until the task ran
    assert task_run(prod, "after")["outputs"]["value"] == f"prod{suffix}/prod{suffix}-1/3/ABC"
    assert task_run(dev, "after")["outputs"]["value"] == f"dev{suffix}/dev{suffix}-1/3/ABC"
    expected = {"team": "data", "stage": f"prod{suffix}", "count": "3", f"order_prod{suffix}": f"prod{suffix}-1",
                "item_a": "A", "item_b": "B", "item_c": "C"}
    assert prod_memo == expected
    assert sorted(prod_terms) == sorted(f"{key}={value}" for key, value in expected.items())  # one term per name

    flow = f"TflowFlowId = 'staged-{suffix}'"
    assert len(await found(client, f"{flow} AND TflowLabels = 'item_c=C'", count=2)) == 2  # both runs' labels visible
    assert await found(client, f"TflowLabels = 'stage=prod{suffix}'") == [prod["run_id"]]  # not its sibling
    assert await found(client, f"{flow} AND TflowLabels = 'stage=none'", count=0) == []  # the old value is gone


async def test_bad_labels_fail_the_task_naming_them_and_change_nothing(client: Client, worker: str, tmp_path: Path):
    suffix = uuid.uuid4().hex[:8]
    path = write_flow(tmp_path, fill(FROM_JSON, suffix=suffix))
    fits = "x" * (MAX_LABELS_BYTES - len('["team=data","big="]'))  # exactly Temporal's bound with the flow's label
    cases = {
        "list": json.dumps({"stage": ["a"]}),
        "system": json.dumps({"system.correlationId": "x"}),
        "equals": json.dumps({"a=b": "c"}),
        "not_a_mapping": "[1, 2]",
        "too_big": json.dumps({"big": fits + "x"}),
        "fits": json.dumps({"big": fits}),
    }
    outcomes = dict(zip(cases, await asyncio.gather(*(
        run(client, path, worker, inputs={"given": given}) for given in cases.values()
    ))))

    def error(name: str) -> dict[str, Any]:
        result, memo, terms = outcomes[name]
        assert result["state"] == "FAILED" and result["error"]["task_id"] == "set", result
        assert memo == {"team": "data"} and terms == ["team=data"], (name, memo, terms)  # nothing changed
        assert [run["task_id"] for run in result["task_runs"]] == ["set"]  # the run stopped there
        error = task_run(result, "set")["error"]
        assert error.pop("task_id") == "set"
        return error

    assert error("list") == {"type": "InvalidLabel", "message": "label `stage` must be text, got a list"}
    assert error("system") == {"type": "InvalidLabel",
                               "message": "label `system.correlationId`: names starting with `system.` are reserved"}
    assert error("equals") == {"type": "InvalidLabel",
                               "message": "label `a=b`: a name cannot hold `=` (the search attribute keeps `name=value`)"}
    assert error("not_a_mapping") == {"type": "InvalidLabel",
                                      "message": "`labels` rendered '[1, 2]': expected a JSON mapping of name → text"}
    assert error("too_big") == {
        "type": "LabelsTooLarge",
        "message": f"the run's labels would take {MAX_LABELS_BYTES + 1} bytes in the `TflowLabels` search attribute; "
                   f"Temporal holds at most {MAX_LABELS_BYTES}",
    }

    result, memo, terms = outcomes["fits"]
    assert result["state"] == "SUCCESS", result["error"]
    assert task_run(result, "after")["outputs"]["value"] == "2"
    assert memo == {"team": "data", "big": fits} and terms == ["team=data", f"big={fits}"]
    assert await found(client, f"TflowLabels = 'big={fits}' AND TflowFlowId = 'json-labels-{suffix}'") == [result["run_id"]]
