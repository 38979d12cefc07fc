"""Flow inputs, outputs and labels through the real CLI (SPEC §5, §6, §8): `tflow run --input/
--inputs-file/--label --json` and `tflow list --label` as separate processes against the session's
dev server, served by an in-process worker; and raw inputs resolved again inside the workflow (what
a subflow's inputs go through). The coercion of every type is in tests/unit/test_inputs.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from tests.support import REPO, cli_env, run_flow, tflow, write_flow

FLOW = """\
id: greet-<<suffix>>
namespace: e2e.inputs
labels:
  - key: team
    value: data
inputs:
  - id: name
    type: STRING
    validator: "[A-Z][a-z]+"
  - id: count
    type: INT
    min: 1
    defaults: 2
  - id: nums
    type: ARRAY
    itemType: INT
  - id: day
    type: DATE
    required: false
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.name }} x{{ inputs.count }} on {{ inputs.day }} ({{ labels.team }}/{{ labels.env }})"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.hello.value }}"
  - id: total
    type: INT
    value: "{{ inputs.nums | sum }}"
  - id: nums
    type: JSON
    value: "{{ inputs.nums }}"
"""

BROKEN_OUTPUT = """\
id: broken-output-<<suffix>>
namespace: e2e.inputs
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: hi
outputs:
  - id: shout
    type: INT
    value: "{{ outputs.hello.value }}"
"""


async def tflow_cli(*args: str) -> tuple[int, str, str]:
    """One `tflow` process (async, so the in-process worker keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *tflow(*args), cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert "Traceback" not in stderr.decode(), stderr.decode()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


def flow_file(folder: Path, text: str, suffix: str, name: str) -> Path:
    return write_flow(folder, text.replace("<<suffix>>", suffix), f"{name}.yaml")


@pytest.fixture
def suffix() -> str:
    return uuid.uuid4().hex[:8]


async def test_run_with_inputs_labels_and_outputs(worker: str, temporal_address: str, client: Client, tmp_path: Path, suffix: str):
    path = flow_file(tmp_path, FLOW, suffix, "greet")
    inputs_file = tmp_path / "inputs.yaml"
    inputs_file.write_text("name: Ann\ncount: 9\nnums: [1, 2, 3]\n")
    on_server = ("--json", "--address", temporal_address, "--task-queue", worker)
    bad_id = f"never-started-{suffix}"

    ok, bad, broken = await asyncio.gather(
        tflow_cli("run", str(path), *on_server, "--inputs-file", str(inputs_file), "--input", "count=4",
                  "--input", "day=2024-02-29", "--label", f"env=e2e-{suffix}"),
        tflow_cli("run", str(path), *on_server, "--id", bad_id, "--input", "name=ann", "--input", "count=0",
                  "--input", "nums=1,x", "--input", "colour=red"),
        tflow_cli("run", str(flow_file(tmp_path, BROKEN_OUTPUT, suffix, "broken")), *on_server),
    )

    # Given by file and flags (the flag wins), coerced, used in templates, outputs typed in the result.
    code, stdout, stderr = ok
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["state"] == "SUCCESS"
    assert result["outputs"] == {
        "greeting": f"Ann x4 on 2024-02-29 (data/e2e-{suffix})",
        "total": 6,
        "nums": [1, 2, 3],
    }

    # Bad and missing inputs: exit 2, every problem named, and no workflow started.
    code, stdout, stderr = bad
    assert code == 2 and stdout == ""
    assert f"{path}: invalid inputs:" in stderr
    for expected in (
        "input `name` (STRING): got 'ann', expected text matching the validator `[A-Z][a-z]+`",
        "input `count` (INT): got '0', expected a value at least 1",
        "input `nums` (ARRAY): got '1,x', expected a list of a whole number (a JSON list or comma-separated)",
        "unknown input `colour`: the flow declares `name`, `count`, `nums`, `day`",
    ):
        assert expected in stderr, stderr
    with pytest.raises(RPCError) as not_started:
        await client.get_workflow_handle(bad_id).describe()
    assert not_started.value.status == RPCStatusCode.NOT_FOUND

    # An output that cannot be coerced fails the run, naming the output.
    code, stdout, stderr = broken
    failed = json.loads(stdout)
    assert code == 1 and failed["state"] == "FAILED" and failed["outputs"] == {}
    assert failed["error"]["type"] == "OutputError"
    assert failed["error"]["message"] == "output `shout`: rendered 'hi', expected a whole number (its type is INT)"

    # The run's labels (the flow's plus --label) are searchable: every --label must match.
    listed = await asyncio.gather(*(
        tflow_cli("list", "--json", "--address", temporal_address, *labels)
        for labels in (
            ("--label", f"env=e2e-{suffix}"),
            ("--label", f"env=e2e-{suffix}", "--label", "team=data"),
            ("--label", f"env=e2e-{suffix}", "--label", "team=other"),
        )
    ))
    rows = [json.loads(stdout) for _, stdout, _ in listed]
    assert [[row["run_id"] for row in found] for found in rows] == [[result["run_id"]], [result["run_id"]], []]
    assert rows[0][0]["labels"] == {"team": "data", "env": f"e2e-{suffix}"}


async def test_the_workflow_resolves_given_inputs_again(client: Client, worker: str, tmp_path: Path, suffix: str):
    """Raw values (as a calling subflow task passes them) are coerced inside the workflow; values
    that do not fit end the run FAILED before any task runs."""
    path = flow_file(tmp_path, FLOW, suffix, "greet")
    coerced, refused = await asyncio.gather(
        run_flow(client, path, worker, inputs={"name": "Bo", "nums": "[4, 5]", "count": "3"}, labels={"env": "raw"}),
        run_flow(client, path, worker, inputs={"name": "Bo", "count": "many"}),
    )
    assert coerced["state"] == "SUCCESS"
    assert coerced["outputs"] == {"greeting": "Bo x3 on  (data/raw)", "total": 9, "nums": [4, 5]}

    assert refused["state"] == "FAILED" and refused["task_runs"] == []
    error: dict[str, Any] = refused["error"]
    assert error["type"] == "InputError"
    assert error["message"] == (
        "input `count` (INT): got 'many', expected a whole number\n"
        "input `nums` (ARRAY) is required and was not given"
    )
