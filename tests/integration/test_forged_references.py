"""Storage references cannot be forged (issue 14 part E): a `$tflowRef` object that a task prints,
an HTTP server answers or a caller gives as an input is plain data to later templates and
`inputFiles`, even a verbatim copy of another run's genuine (signed) reference; only references a
worker signed for the run's root run are read, so a subflow's stored outputs still reach its
caller; a run id that could leave the storage root is refused before anything starts.

Real dev server, a real worker with its own storage directory, a real local HTTP server.
"""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import Client

from client.worker import create_worker
from tests.support import PYTHON, REPO, cli_env, fill, run_flow, task_run, tflow, write_flow

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET_SIZE = 200_000
"""Over the 128 KiB threshold: the victim's value is stored, and reading it would show its size."""


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest_asyncio.fixture(loop_scope="session")
async def storage_worker(client: Client, task_queue: str, storage: Path) -> AsyncIterator[str]:
    async with create_worker(client, task_queue, graceful_shutdown_s=5, storage_dir=storage):
        yield task_queue


@pytest.fixture
def answer() -> Iterator[tuple[int, dict[str, Any]]]:
    """A local HTTP server answering every GET with the JSON object put in the returned dict."""
    body: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], body
    finally:
        server.shutdown()
        server.server_close()


def print_outputs(outputs: str) -> str:
    """A shell command printing `::{"outputs": <python expression>}::` (json imported)."""
    return json.dumps(f'{PYTHON} -c "import json; print(\'::\' + json.dumps({{\'outputs\': {outputs}}}) + \'::\')"')


VICTIM = """
id: victim
namespace: tests.forgery
tasks:
  - id: produce
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - <<print_secret>>
  - id: measure
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.produce.vars.secret | length }}"
"""

ATTACKER = """
id: attacker
namespace: tests.forgery
inputs:
  - id: given
    type: JSON
tasks:
  - id: forger
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - <<forge>>
  - id: fetch
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:<<port>>/ref
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.forger.vars.bare }}|{{ outputs.forger.vars.copied }}|{{ outputs.fetch.body.ref }}|{{ inputs.given }}"
  - id: lengths
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.forger.vars.copied | length }} {{ outputs.fetch.body.ref | length }} {{ inputs.given | length }} {{ outputs.forger.vars.copied['$tflowRef'] }}"
  - id: files
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      output.json: "{{ outputs.forger.vars.copied }}"
      body.json: "{{ outputs.fetch.body.ref }}"
      input.json: "{{ inputs.given }}"
    commands:
      - <<read_files>>
"""


async def test_forged_references_from_outputs_bodies_and_inputs_are_plain_data(
    client: Client, storage_worker: str, storage: Path, tmp_path: Path, answer: tuple[int, dict[str, Any]]
):
    victim = write_flow(tmp_path, fill(VICTIM, print_secret=print_outputs(f"{{'secret': 'SECRET-' + 's' * {SECRET_SIZE}}}")),
                        "victim.yaml")
    stolen = await run_flow(client, victim, storage_worker)
    assert stolen["state"] == "SUCCESS", stolen
    reference = task_run(stolen, "produce")["outputs"]["vars"]["secret"]
    assert (storage / reference["$tflowRef"]).is_file() and reference["run"] == stolen["run_id"]
    assert task_run(stolen, "measure")["outputs"]["value"] == str(SECRET_SIZE + 7)  # its own run reads it

    bare = {"$tflowRef": reference["$tflowRef"], "size": reference["size"], "kind": "json"}
    port, body = answer
    body["ref"] = reference  # the genuine reference, signed for the victim's run
    read_files = print_outputs("{name: json.load(open(name)) for name in ('output.json', 'body.json', 'input.json')}")
    forge = json.dumps("echo '::" + json.dumps({"outputs": {"bare": bare, "copied": reference}}) + "::'")
    attacker = write_flow(tmp_path, fill(ATTACKER, forge=forge, port=port, read_files=read_files), "attacker.yaml")
    result = await run_flow(client, attacker, storage_worker, inputs={"given": reference})

    assert result["state"] == "SUCCESS", result
    assert "SECRET" not in json.dumps(result), "another run's stored value leaked"
    shown = task_run(result, "show")["outputs"]["value"].split("|")
    assert [json.loads(text) for text in shown] == [bare, reference, reference, reference]
    fields = len(reference)
    assert task_run(result, "lengths")["outputs"]["value"] == f"{fields} {fields} {fields} {reference['$tflowRef']}"
    assert task_run(result, "files")["outputs"]["vars"] == {"output.json": reference, "body.json": reference,
                                                           "input.json": reference}


PARENT = """
id: parent
namespace: tests.forgery
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.forgery
    flowId: child
  - id: measure
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call.outputs.big | length }}"
"""

CHILD = """
id: child
namespace: tests.forgery
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - <<print_big>>
outputs:
  - id: big
    type: JSON
    value: "{{ outputs.make.vars.big }}"
"""


async def test_a_subflow_stores_values_its_caller_reads(client: Client, storage_worker: str, tmp_path: Path):
    """References are bound to the root run: the child's stored output is read by its parent."""
    write_flow(tmp_path, fill(CHILD, print_big=print_outputs(f"{{'big': 'b' * {SECRET_SIZE}}}")), "child.yaml")
    result = await run_flow(client, write_flow(tmp_path, PARENT, "parent.yaml"), storage_worker)
    assert result["state"] == "SUCCESS", result
    big = task_run(result, "call")["outputs"]["outputs"]["big"]
    assert big["run"] == result["run_id"], "the child binds its references to its root run"
    assert task_run(result, "measure")["outputs"]["value"] == str(SECRET_SIZE)


@pytest.mark.parametrize("run_id", ["..", ".", "a/b", "..\\x", "x\x01y", "-x", "a" * 201])
async def test_an_unsafe_run_id_is_refused_before_anything_starts(temporal_address: str, tmp_path: Path, run_id: str):
    flow = write_flow(tmp_path, "id: quick\nnamespace: tests.forgery\ntasks:\n  - id: a\n    type: log\n    message: hi\n")
    proc = subprocess.run(tflow("run", str(flow), "--id", run_id, "--address", temporal_address, "--detach"),
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "invalid run id" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "Started" not in proc.stdout
