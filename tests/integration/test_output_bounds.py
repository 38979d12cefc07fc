"""Outputs of any shape end cleanly (issue 14, worker side; README Security → bounds): a script's
900-deep `::{json}::` output, the same body from a real local HTTP server, 30,000 protocol log and
metric lines, too many vars, a deep stdout read by an extractor, and `outputFiles` over a symlink
loop, on a real dev server and worker. Each ends FAILED with its named error after exactly one
attempt, the process started (the request sent) once, within seconds; a 64-deep value travels and
is read by a later task; 30,000 log lines alone succeed with a bounded result; a symlink loop under
`**` is not followed while a normal run on the same worker finishes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.bounds import MAX_DEPTH, MAX_METRICS, MAX_OUTPUT_VARS, RESULT_LIMIT_BYTES
from activities.output_globs import MAX_OUTPUT_FILES
from client.runs import start_run, wait_result
from client.worker import create_worker
from temporal_flows.language.loader import load_flow
from tests.support import duration, fill, run_flow, task_run, write_flow

pytestmark = pytest.mark.asyncio(loop_scope="session")

RUN_BOUND_S = 60
"""A run that does not end within this is the bug itself (stuck RUNNING or retried forever)."""
TASK_BOUND_S = 10
"""Each failing task ends within this, measured from its start to its end in the ledger (about a
second on a quiet machine; the unbounded worker re-ran it 11 times with back-off, over a minute)."""


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def run(client: Client, folder: Path, text: str, queue: str, name: str = "flow.yaml") -> dict[str, Any]:
    return await asyncio.wait_for(run_flow(client, write_flow(folder, text, name), queue), RUN_BOUND_S)


def assert_failed_once(result: dict[str, Any], task_id: str, error_type: str, *started: Path,
                       ready: Path | None = None) -> dict[str, Any]:
    """The run FAILED because `task_id` failed with `error_type` after one attempt, within seconds
    of its start (or of the epoch seconds the task wrote to `ready` once its setup was done);
    each `started` counter file shows the process ran exactly once."""
    assert result["state"] == "FAILED", result
    failed = task_run(result, task_id)
    assert failed["state"] == "FAILED" and failed["error"]["type"] == error_type, failed["error"]
    assert failed["attempts"] == 1
    if ready is None:
        assert duration(failed) < TASK_BOUND_S, duration(failed)
    else:
        ended = datetime.fromisoformat(failed["ended_at"].replace("Z", "+00:00")).timestamp()
        assert ended - float(ready.read_text()) < TASK_BOUND_S, ended - float(ready.read_text())
    for counter in started:
        assert counter.read_text().splitlines() == ["started"], "the process ran more than once"
    return failed


def script_task(task_id: str, counter: Path, body: str, extra: str = "") -> str:
    """A Python `script` task that first appends `started` to `counter`, then runs `body`."""
    lines = [f"open({str(counter)!r}, 'a').write('started\\n')", *body.splitlines()]
    script = "\n".join("      " + line for line in lines)
    return f"  - id: {task_id}\n    type: script\n{extra}    script: |\n{script}\n"


def flow(flow_id: str, *tasks: str) -> str:
    return f"id: {flow_id}\nnamespace: tests.bounds\ntasks:\n" + "".join(tasks)


async def test_a_900_deep_protocol_output_fails_once_and_64_deep_travels(client: Client, worker: str, tmp_path: Path):
    deep, deeper = tmp_path / "deep.count", tmp_path / "deeper.count"
    emit = "print('::{\"outputs\": {\"v\": ' + %r + '}}::')"
    failing = flow("deep", script_task("deep", deep, emit % nested(900)))
    just_over = flow("just_over", script_task("over", deeper, emit % nested(MAX_DEPTH + 1)))
    at_bound = fill("""
        id: at_bound
        namespace: tests.bounds
        tasks:
          - id: produce
            type: commands
            commands:
              - >-
                echo '::{"outputs": {"v": <<value>>, "n": 1}}::'
          - id: parallel
            type: parallel
            tasks:
              - id: read
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.produce.vars.v | length }} {{ outputs.produce.vars.n }}"
              - id: pass_on
                type: commands
                commands:
                  - >-
                    echo '::{"outputs": {"again": {{ outputs.produce.vars.v | json }}}}::'
        """, value=nested(MAX_DEPTH))
    results = await asyncio.gather(run(client, tmp_path, failing, worker, "deep.yaml"),
                                   run(client, tmp_path, just_over, worker, "over.yaml"),
                                   run(client, tmp_path, at_bound, worker, "ok.yaml"))
    failed = assert_failed_once(results[0], "deep", "OutputTooDeep", deep)
    assert f"deeper than {MAX_DEPTH} levels" in failed["error"]["message"]
    assert "outputFiles" in failed["error"]["message"], "the message says what to do instead"
    assert_failed_once(results[1], "over", "OutputTooDeep", deeper)
    assert results[2]["state"] == "SUCCESS", results[2]
    assert task_run(results[2], "read")["outputs"]["value"] == "1 1"
    assert json.dumps(task_run(results[2], "pass_on")["outputs"]["vars"]["again"], separators=(",", ":")) == nested(MAX_DEPTH)


class BodyServer(ThreadingHTTPServer):
    """Serves bodies of awkward shapes and counts the requests it got by path."""

    daemon_threads = True
    BODIES = {
        "/deep": (200, nested(900)),
        "/many": (200, "[" + ",".join(["0"] * 400_000) + "]"),  # 800 KB: under the body limit
        "/deep-error": (500, nested(900)),
        "/fine": (200, json.dumps({"items": [{"id": 1}, {"id": 2}]})),
    }

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), BodyHandler)
        self.hits: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class BodyHandler(BaseHTTPRequestHandler):
    server: BodyServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        status, body = self.server.BODIES[self.path]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def body_server() -> Iterator[BodyServer]:
    httpd = BodyServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def http_flow(flow_id: str, url: str, extra: str = "") -> str:
    return f"id: {flow_id}\nnamespace: tests.bounds\ntasks:\n  - id: get\n    type: http\n    url: {url}\n{extra}"


async def test_http_bodies_past_the_bounds_fail_once_sent_once(client: Client, worker: str, tmp_path: Path, body_server: BodyServer):
    url = body_server.url
    flows = {
        "deep": http_flow("deep", f"{url}/deep"),
        "many": http_flow("many", f"{url}/many"),
        "deep_error": http_flow("deep_error", f"{url}/deep-error"),
        "extracted": http_flow("extracted", f"{url}/fine",
                               "    output:\n      - {name: ids, type: jmespath, value: 'items[*].id'}\n"),
    }
    results = dict(zip(flows, await asyncio.gather(*(run(client, tmp_path, text, worker, f"{name}.yaml")
                                                     for name, text in flows.items()))))
    assert_failed_once(results["deep"], "get", "OutputTooDeep")
    many = assert_failed_once(results["many"], "get", "ResultTooLarge")
    assert "100,000 keys and items" in many["error"]["message"]
    error = assert_failed_once(results["deep_error"], "get", "HttpStatus")
    assert error["error"]["message"].startswith("HTTP 500"), "a failing status stays the error; its deep body stays text"
    assert results["extracted"]["state"] == "SUCCESS" and task_run(results["extracted"], "get")["outputs"]["ids"] == [1, 2]
    assert body_server.hits == {"/deep": 1, "/many": 1, "/deep-error": 1, "/fine": 1}, "every request was sent once"


async def commands_result(client: Client, events: list[Any]) -> dict[str, Any]:
    """The decoded result of the run's one completed `commands`/`script` activity."""
    results = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            payloads = event.activity_task_completed_event_attributes.result.payloads
            [decoded] = await client.data_converter.decode(payloads, [dict])
            results += [decoded] if isinstance(decoded, dict) and "log_lines" in decoded else []
    [result] = results
    return result


async def test_protocol_logs_metrics_and_vars_past_their_bounds(client: Client, worker: str, tmp_path: Path):
    both, names, extractor, fat = (tmp_path / f"{name}.count" for name in ("both", "names", "extractor", "fat"))
    lines = ("import json\nfor i in range(30_000):\n"
             "    print('::' + json.dumps({%s}) + '::')")
    log_and_metric = lines % ("'logs': [{'level': 'INFO', 'message': 'row %d of the export, ' % i + 'x' * 120}], "
                              "'metrics': [{'name': 'rows', 'type': 'counter', 'value': 1, 'tags': {'i': str(i)}}]")
    many_names = f"import json\nprint('::' + json.dumps({{'outputs': {{'k' + str(i): i for i in range({MAX_OUTPUT_VARS + 1})}}}}) + '::')"
    deep_stdout = f"print({nested(900)!r})"
    fat_metrics = lines.replace("30_000", str(MAX_METRICS)) % "'metrics': {'name': 'm', 'type': 'gauge', 'value': i, 'tags': {'note': 'n' * 2000}}"
    flows = {
        "both": flow("both", script_task("both", both, log_and_metric)),
        "names": flow("names", script_task("names", names, many_names)),
        "extractor": flow("extractor", script_task("extractor", extractor, deep_stdout,
                                                   "    output:\n      - {name: whole, type: json}\n")),
        "fat": flow("fat", script_task("fat", fat, fat_metrics)),
    }
    results = dict(zip(flows, await asyncio.gather(*(run(client, tmp_path, text, worker, f"{name}.yaml")
                                                     for name, text in flows.items()))))
    failed = assert_failed_once(results["both"], "both", "ResultTooLarge", both)
    assert f"more than {MAX_METRICS:,}" in failed["error"]["message"]
    assert_failed_once(results["names"], "names", "ResultTooLarge", names)
    assert_failed_once(results["extractor"], "extractor", "OutputTooDeep", extractor)
    too_big = assert_failed_once(results["fat"], "fat", "ResultTooLarge", fat)  # each bound kept, the whole too big
    assert f"the limit is {RESULT_LIMIT_BYTES:,}" in too_big["error"]["message"]


async def test_30000_protocol_log_lines_alone_succeed_with_a_bounded_result(client: Client, worker: str, tmp_path: Path):
    counter = tmp_path / "logs.count"
    body = ("import json\nfor i in range(30_000):\n"
            "    print('::' + json.dumps({'logs': [{'level': 'INFO', 'message': 'row %d, ' % i + 'x' * 120}]}) + '::')")
    path = write_flow(tmp_path, flow("logs", script_task("logs", counter, body)))
    handle = await start_run(client, load_flow(path), task_queue=worker)
    result = await asyncio.wait_for(wait_result(handle), RUN_BOUND_S)
    assert result["state"] == "SUCCESS", result
    assert task_run(result, "logs")["attempts"] == 1 and counter.read_text() == "started\n"
    events = [event async for event in handle.fetch_history_events()]
    completed = await commands_result(client, events)
    assert len(json.dumps(completed)) < RESULT_LIMIT_BYTES
    assert 100 < len(completed["logs"]) < 30_000
    assert completed["logs"][-1]["message"].startswith(f"… {30_000 - len(completed['logs']) + 1} protocol log entries left out")


@pytest_asyncio.fixture(loop_scope="session")
async def storage_worker(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[str]:
    async with create_worker(client, task_queue, graceful_shutdown_s=5, storage_dir=tmp_path / "storage"):
        yield task_queue


SYMLINK_LOOP = """
id: loop
namespace: tests.bounds
tasks:
  - id: files
    type: commands
    outputFiles: ["**/*.txt", "out/*.txt", "up/*"]
    commands:
      - mkdir -p a/b && echo one > a/b/one.txt && echo top > top.txt
      - ln -s .. a/loop && ln -s ../.. a/b/loop && ln -s "$PWD" a/b/self
      - mkdir -p <<outside>> && echo secret > <<outside>>/secret.txt
      - ln -s <<outside>> out && ln -s <<outside>>/secret.txt leak.txt && ln -s top.txt alias.txt && ln -s .. up
      - echo started >> <<counter>>
"""


async def test_output_files_over_a_symlink_loop_end_quickly_beside_a_normal_run(client: Client, storage_worker: str, tmp_path: Path):
    counter = tmp_path / "loop.count"
    loop = fill(SYMLINK_LOOP, outside=tmp_path / "outside", counter=counter)
    normal = "id: normal\nnamespace: tests.bounds\ntasks:\n  - id: hello\n    type: commands\n    commands: ['echo hi']\n"
    looped, plain = await asyncio.gather(run(client, tmp_path, loop, storage_worker, "loop.yaml"),
                                         run(client, tmp_path, normal, storage_worker, "normal.yaml"))
    assert plain["state"] == "SUCCESS"
    assert looped["state"] == "SUCCESS", looped
    files = task_run(looped, "files")
    assert sorted(files["outputs"]["outputFiles"]) == ["a/b/one.txt", "alias.txt", "top.txt"], \
        "no directory symlink followed, nothing from outside the working directory"
    assert files["attempts"] == 1 and counter.read_text() == "started\n"
    assert duration(files) < TASK_BOUND_S


async def test_output_files_past_the_cap_or_escaping_fail_once(client: Client, storage_worker: str, tmp_path: Path):
    many, escaping, ready = tmp_path / "many.count", tmp_path / "escaping.count", tmp_path / "many.ready"
    too_many = fill("""
        id: too_many
        namespace: tests.bounds
        tasks:
          - id: files
            type: commands
            outputFiles: ["**/*.txt"]
            commands:
              - echo started >> <<counter>>
              - mkdir -p f/g && cd f/g && seq -f '%g.txt' <<count>> | xargs touch
              - date +%s.%N > <<ready>>
        """, counter=many, count=MAX_OUTPUT_FILES + 1, ready=ready)
    escape = fill("""
        id: escape
        namespace: tests.bounds
        tasks:
          - id: files
            type: commands
            outputFiles: ["../*"]
            commands: ["echo started >> <<counter>>"]
        """, counter=escaping)
    results = await asyncio.gather(run(client, tmp_path, too_many, storage_worker, "many.yaml"),
                                   run(client, tmp_path, escape, storage_worker, "escape.yaml"))
    failed = assert_failed_once(results[0], "files", "TooManyOutputFiles", many, ready=ready)  # creating 10,001 files is slow on a busy machine
    assert f"more than {MAX_OUTPUT_FILES:,} files" in failed["error"]["message"]
    assert not list((tmp_path / "storage").rglob("*.txt")), "nothing was copied past the cap"
    assert_failed_once(results[1], "files", "OutputFilesError", escaping)
