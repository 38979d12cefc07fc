"""Storage for big values and files (issue 8, SPEC §4): an output over the threshold travels through
Temporal as a reference and is read back by expressions on a worker; `outputFiles` are kept and
addressable later; `inputFiles` are written into the working directory; an unreadable reference
fails the task naming its file. Runs on the session's real dev server with a worker whose storage
is the test's own directory."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import AsyncIterator

import pytest
import pytest_asyncio
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from client.worker import create_worker
from tests.support import PYTHON, REPO, activity_workers, cli_env, fill, run_flow, run_with_history, task_run, tflow, write_flow

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAYLOAD_LIMIT = 256 * 1024
BIG = 3_000_000

PRINT_BIG = fill(
    '''<<python>> -c "import json; print('::' + json.dumps({'outputs': {'data': 'x' * <<size>>, 'small': 7}}) + '::')"''',
    python=PYTHON, size=BIG,
)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest_asyncio.fixture(loop_scope="session")
async def storage_worker(client: Client, task_queue: str, storage: Path) -> AsyncIterator[str]:
    async with create_worker(client, task_queue, graceful_shutdown_s=5, storage_dir=storage):
        yield task_queue


def payload_sizes(message: Message) -> list[int]:
    """The size of every Payload anywhere inside a history event."""
    if isinstance(message, Payload):
        return [len(message.data)]
    sizes: list[int] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            sizes += payload_sizes(value)
            continue
        for item in (value.values() if hasattr(value, "values") else value):  # a map, or a repeated field
            if isinstance(item, Message):
                sizes += payload_sizes(item)
    return sizes


async def test_a_3mb_output_is_read_through_expressions_and_never_enters_the_history(
    client: Client, storage_worker: str, storage: Path, tmp_path: Path
):
    flow = write_flow(tmp_path, fill("""
        id: big-output
        namespace: tests.storage
        tasks:
          - id: produce
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - <<print_big>>
          - id: measure
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.produce.vars.data | length }}"
          - id: copy
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.produce.vars.data }}"
          - id: measure_copy
            type: io.kestra.plugin.core.debug.Return
            runIf: "{{ outputs.copy.value | length > 1000 }}"
            format: "{{ outputs.copy.value | length }} {{ outputs.produce.vars.small }}"
          - id: shell_reads
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - >-
                echo '::{"outputs": {"length": {{ outputs.produce.vars.data | length }}}}::'
    """, print_big=json.dumps(PRINT_BIG)))
    result, events = await run_with_history(client, flow, storage_worker)
    assert result["state"] == "SUCCESS", result
    produced = task_run(result, "produce")["outputs"]["vars"]
    assert produced["small"] == 7  # small values stay inline
    assert produced["data"]["size"] >= BIG
    assert task_run(result, "measure")["outputs"]["value"] == str(BIG)
    assert "$tflowRef" in task_run(result, "copy")["outputs"]["value"]  # a big rendered result is stored again
    assert task_run(result, "measure_copy")["outputs"]["value"] == f"{BIG} 7"
    assert task_run(result, "shell_reads")["outputs"]["vars"]["length"] == BIG
    stored = [path for path in storage.rglob("*") if path.is_file()]
    assert any(path.stat().st_size >= BIG for path in stored), stored

    largest = max(size for event in events for size in payload_sizes(event))
    assert largest < PAYLOAD_LIMIT, f"a payload of {largest} bytes is in the history"
    assert largest > 0


async def test_output_files_are_stored_and_read_by_later_tasks_and_input_files_are_written(
    client: Client, storage_worker: str, storage: Path, tmp_path: Path
):
    flow = write_flow(tmp_path, fill("""
        id: files
        namespace: tests.storage
        tasks:
          - id: write
            type: io.kestra.plugin.scripts.shell.Commands
            outputFiles: ["*.csv", "out/**/*.txt"]
            commands:
              - printf 'a,b\\n1,2\\n3,4\\n' > x.csv
              - mkdir -p out/deep && echo note > out/deep/n.txt && echo skipped > other.log
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.write.outputFiles['x.csv'] }}"
          - id: consume
            type: io.kestra.plugin.scripts.shell.Commands
            inputFiles:
              data.csv: "{{ outputs.write.outputFiles['x.csv'] }}"
              literal.txt: "hello {{ flow.id }}"
              nested/n.txt: "{{ outputs.write.outputFiles['out/deep/n.txt'] }}"
            commands:
              - >-
                <<python>> -c "import json; read = lambda name: open(name).read();
                print('::' + json.dumps({'outputs': {'lines': read('data.csv').count(chr(10)),
                'literal': read('literal.txt'), 'note': read('nested/n.txt').strip()}}) + '::')"
    """, python=PYTHON))
    result = await run_flow(client, flow, storage_worker)
    assert result["state"] == "SUCCESS", result
    files = task_run(result, "write")["outputs"]["outputFiles"]
    assert sorted(files) == ["out/deep/n.txt", "x.csv"]
    assert (storage / files["x.csv"]["$tflowRef"]).read_text() == "a,b\n1,2\n3,4\n"
    assert task_run(result, "read")["outputs"]["value"] == "a,b\n1,2\n3,4\n"
    assert task_run(result, "consume")["outputs"]["vars"] == {"lines": 3, "literal": "hello files", "note": "note"}


async def test_a_reference_that_cannot_be_read_fails_the_task_naming_the_file(
    client: Client, storage_worker: str, storage: Path, tmp_path: Path
):
    flow = write_flow(tmp_path, fill("""
        id: lost-value
        namespace: tests.storage
        tasks:
          - id: produce
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - <<print_big>>
          - id: remove
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - find '<<storage>>' -name '*.json' -delete
          - id: measure
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.produce.vars.data | length }}"
    """, print_big=json.dumps(PRINT_BIG), storage=storage))
    result = await run_flow(client, flow, storage_worker)
    assert result["state"] == "FAILED", result
    failed = task_run(result, "measure")
    reference = task_run(result, "produce")["outputs"]["vars"]["data"]["$tflowRef"]
    assert failed["state"] == "FAILED"
    assert str(storage / reference) in failed["error"]["message"], failed["error"]
    assert failed["error"]["type"] == "StoredValueError"


async def test_a_stored_value_as_a_runnable_property_fails_clearly(
    client: Client, storage_worker: str, tmp_path: Path
):
    flow = write_flow(tmp_path, fill("""
        id: too-big-property
        namespace: tests.storage
        tasks:
          - id: produce
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - <<print_big>>
          - id: echo_all
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - echo "{{ outputs.produce.vars.data }}"
    """, print_big=json.dumps(PRINT_BIG)))
    result = await run_flow(client, flow, storage_worker)
    error = task_run(result, "echo_all")["error"]
    assert result["state"] == "FAILED"
    assert "property `commands`" in error["message"] and "inputFiles" in error["message"], error


async def test_flow_outputs_read_stored_values(client: Client, storage_worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: flow-outputs
        namespace: tests.storage
        tasks:
          - id: produce
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - <<print_big>>
        outputs:
          - id: length
            type: INT
            value: "{{ outputs.produce.vars.data | length }}"
          - id: small
            type: STRING
            value: "{{ outputs.produce.vars.small }}"
    """, print_big=json.dumps(PRINT_BIG)))
    result = await run_flow(client, flow, storage_worker)
    assert result["state"] == "SUCCESS", result
    assert result["outputs"] == {"length": BIG, "small": "7"}


async def test_a_python_script_with_a_3mb_output_and_files(client: Client, storage_worker: str, tmp_path: Path):
    """The acceptance with a Python `script` task (Kestra's `Kestra.outputs`), plus its files."""
    flow = write_flow(tmp_path, fill("""
        id: big-script
        namespace: tests.storage
        tasks:
          - id: produce
            type: io.kestra.plugin.scripts.python.Script
            inputFiles:
              seed.txt: "<<size>>"
            outputFiles: ["report.txt"]
            script: |
              from kestra import Kestra
              size = int(open("seed.txt").read())
              open("report.txt", "w").write("rows: 3")
              Kestra.outputs({"data": "y" * size})
          - id: measure
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.produce.vars.data | length }} / {{ outputs.produce.outputFiles['report.txt'] }}"
    """, size=BIG))
    result, events = await run_with_history(client, flow, storage_worker)
    assert result["state"] == "SUCCESS", result
    assert task_run(result, "measure")["outputs"]["value"] == f"{BIG} / rows: 3"
    largest = max(size for event in events for size in payload_sizes(event))
    assert largest < PAYLOAD_LIMIT, f"a payload of {largest} bytes is in the history"


async def test_a_big_http_body_travels_as_a_reference(client: Client, storage_worker: str, tmp_path: Path):
    """An `http` response body over the threshold is stored; later templates read it."""
    body = json.dumps({"items": ["z" * 100] * 3000})  # ~310 KB of JSON

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        flow = write_flow(tmp_path, fill("""
            id: big-body
            namespace: tests.storage
            tasks:
              - id: fetch
                type: io.kestra.plugin.core.http.Request
                uri: http://127.0.0.1:<<port>>/items
              - id: count
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.fetch.body['items'] | length }}"
        """, port=server.server_address[1]))
        result, events = await run_with_history(client, flow, storage_worker)
    finally:
        server.shutdown()
    assert result["state"] == "SUCCESS", result
    assert task_run(result, "fetch")["outputs"]["body"]["$tflowRef"]
    assert task_run(result, "count")["outputs"]["value"] == "3000"
    assert max(size for event in events for size in payload_sizes(event)) < PAYLOAD_LIMIT


async def test_a_task_timing_out_after_a_big_output_keeps_it_stored(client: Client, storage_worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: big-then-timeout
        namespace: tests.storage
        tasks:
          - id: slow
            type: io.kestra.plugin.scripts.shell.Commands
            timeout: PT1S
            commands:
              - <<print_big>>
              - sleep 10
    """, print_big=json.dumps(PRINT_BIG)))
    result, events = await run_with_history(client, flow, storage_worker)
    slow = task_run(result, "slow")
    assert slow["state"] == "FAILED" and slow["error"]["type"] == "Timeout", slow
    assert slow["outputs"]["vars"]["data"]["size"] >= BIG
    assert max(size for event in events for size in payload_sizes(event)) < PAYLOAD_LIMIT


async def test_two_worker_processes_share_one_storage_directory(client: Client, temporal_address: str, tmp_path: Path):
    """`tflow worker --storage DIR` on two workers (as on two machines sharing a mount): a value and
    a file stored by one are read by the other."""
    shared = tmp_path / "shared-mount"
    suffix = uuid.uuid4().hex[:8]
    main, other = f"main-{suffix}", f"other-{suffix}"
    workers = []
    for queue in (main, other):
        with open(tmp_path / f"{queue}.log", "ab") as sink:
            workers.append(subprocess.Popen(
                tflow("worker", "--address", temporal_address, "--task-queue", queue, "--storage", str(shared),
                      "--drain-timeout", "1"),
                cwd=REPO, env=cli_env(TFLOW_HOME=str(tmp_path / "home")), stdout=sink, stderr=subprocess.STDOUT))
    try:
        flow = write_flow(tmp_path, fill("""
            id: shared-storage
            namespace: tests.storage
            tasks:
              - id: produce
                type: io.kestra.plugin.scripts.shell.Commands
                workerGroup: {key: <<other>>}
                outputFiles: ["table.csv"]
                commands:
                  - printf 'k,v\\n' > table.csv
                  - <<print_big>>
              - id: measure
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.produce.vars.data | length }}"
              - id: consume
                type: io.kestra.plugin.scripts.shell.Commands
                inputFiles:
                  copy.csv: "{{ outputs.produce.outputFiles['table.csv'] }}"
                commands:
                  - test "$(cat copy.csv)" = "k,v"
        """, other=other, print_big=json.dumps(PRINT_BIG)))
        result, events = await run_with_history(client, flow, main)
        assert result["state"] == "SUCCESS", result
        assert task_run(result, "measure")["outputs"]["value"] == str(BIG)
        ran_on = activity_workers(events)
        assert ran_on["produce"].startswith(f"{workers[1].pid}@"), ran_on
        assert ran_on["render measure (stored values)"].startswith(f"{workers[0].pid}@"), ran_on
        assert ran_on["consume"].startswith(f"{workers[0].pid}@"), ran_on
        assert any(path.stat().st_size >= BIG for path in shared.rglob("*.json"))
        assert not (tmp_path / "home" / "storage").exists()  # --storage, not the default
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=30)
