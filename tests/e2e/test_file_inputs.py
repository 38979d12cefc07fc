"""FILE inputs (Kestra's `type: FILE`) through the real CLI: `tflow run --input data=@rows.csv` (and
an `--inputs-file` value `@path`) stores the file in the run's storage before the run starts, and
the input is that file's signed reference: a commands task stages it with `inputFiles`, a template
reads its text. Bad values exit 2 naming the input; a forged FILE-shaped value is plain data."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import storage as run_storage
from activities.storage.keys import genuine
from client.runs import start_run, wait_result
from client.worker import create_worker
from temporal_flows.language.loader import load_flow
from tests.support import PYTHON, REPO, cli_env, fill, task_run, tflow, write_flow

FLOW = """\
id: count-<<suffix>>
namespace: e2e.files
inputs:
  - id: data
    type: FILE
tasks:
  - id: count
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      rows.csv: "{{ inputs.data }}"
    commands:
      - >-
        <<python>> -c "import json; text = open('rows.csv').read();
        print('::' + json.dumps({'outputs': {'lines': text.count(chr(10)), 'first': text.split(chr(10))[0]}}) + '::')"
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.data }}"
"""
ROWS = "id,name\n1,ann\n2,bo\n3,cy\n"


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest_asyncio.fixture(loop_scope="session")
async def storage_worker(client: Client, task_queue: str, storage: Path) -> AsyncIterator[str]:
    async with create_worker(client, task_queue, graceful_shutdown_s=5, storage_dir=storage):
        yield task_queue


async def tflow_cli(storage: Path, *args: str) -> tuple[int, str, str]:
    """One `tflow` process with the worker's storage (async: the in-process worker serves meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *tflow(*args), cwd=REPO, env=cli_env(TFLOW_STORAGE=str(storage)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert "Traceback" not in stderr.decode(), stderr.decode()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def started_inputs(client: Client, run_id: str) -> dict[str, Any]:
    """The inputs the run was started with, from the first event of its history."""
    async for event in client.get_workflow_handle(run_id).fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [request] = await client.data_converter.decode(payloads[:1], [dict])
        return request["inputs"]
    raise AssertionError("no history")


async def test_a_file_input_is_stored_signed_and_staged(client: Client, storage_worker: str, storage: Path, tmp_path: Path,
                                                        temporal_address: str):
    suffix = uuid.uuid4().hex[:8]
    flow = write_flow(tmp_path, fill(FLOW, suffix=suffix, python=PYTHON), "count.yaml")
    (tmp_path / "rows.csv").write_text(ROWS)
    nested = tmp_path / "given"
    nested.mkdir()
    (nested / "other.csv").write_text("a\nb\n")
    (nested / "inputs.yaml").write_text("data: '@other.csv'\n")  # relative to the inputs file
    on_server = ("--json", "--address", temporal_address, "--task-queue", storage_worker)
    run_id, by_file_id, missing_id = (f"{name}-{suffix}" for name in ("files", "by-file", "missing"))

    ok, by_file, missing, plain = await asyncio.gather(
        tflow_cli(storage, "run", str(flow), *on_server, "--id", run_id, "--input", f"data=@{tmp_path / 'rows.csv'}"),
        tflow_cli(storage, "run", str(flow), *on_server, "--id", by_file_id, "--inputs-file", str(nested / "inputs.yaml")),
        tflow_cli(storage, "run", str(flow), *on_server, "--id", missing_id, "--input", f"data=@{tmp_path / 'nope.csv'}"),
        tflow_cli(storage, "run", str(flow), *on_server, "--input", "data=rows.csv"),
    )

    code, stdout, stderr = ok
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["state"] == "SUCCESS", result
    assert task_run(result, "count")["outputs"]["vars"] == {"lines": 4, "first": "id,name"}
    assert task_run(result, "show")["outputs"]["value"] == ROWS  # a template reads the file's text
    assert (storage / run_id / "inputs" / "data" / "rows.csv").read_text() == ROWS

    code, stdout, stderr = by_file
    assert code == 0, stderr
    assert task_run(json.loads(stdout), "count")["outputs"]["vars"] == {"lines": 2, "first": "a"}

    # The history holds a reference of kind file, bound to the run and signed by the storage's key.
    reference = (await started_inputs(client, run_id))["data"]
    assert reference["$tflowRef"] == f"{run_id}/inputs/data/rows.csv"
    assert (reference["kind"], reference["size"], reference["run"]) == ("file", len(ROWS), run_id)
    assert genuine(reference, run_id, run_storage.open_storage(storage))
    assert not genuine({**reference, "size": 3}, run_id, run_storage.open_storage(storage))

    code, stdout, stderr = missing
    assert code == 2 and stdout == ""
    assert f"input `data` (FILE): no file {tmp_path / 'nope.csv'}" in stderr, stderr
    with pytest.raises(RPCError) as not_started:
        await client.get_workflow_handle(missing_id).describe()
    assert not_started.value.status == RPCStatusCode.NOT_FOUND

    code, stdout, stderr = plain
    assert code == 2 and stdout == ""
    assert "input `data` (FILE): got 'rows.csv', expected a file given as @path (e.g. --input data=@rows.csv)" in stderr, stderr

    # Another run given this run's genuine reference (or a forged one) holds plain data: staged as JSON text.
    loaded = load_flow(flow)
    for other_id, forged in ((f"reuse-{suffix}", reference), (f"forged-{suffix}", {**reference, "run": f"forged-{suffix}"})):
        handle = await start_run(client, loaded, task_queue=storage_worker, run_id=other_id, inputs={"data": forged})
        forged_result = await wait_result(handle)
        assert forged_result["state"] == "SUCCESS", forged_result
        staged = task_run(forged_result, "count")["outputs"]["vars"]
        assert staged["lines"] == 0 and json.loads(staged["first"]) == forged
        assert json.loads(task_run(forged_result, "show")["outputs"]["value"]) == forged
