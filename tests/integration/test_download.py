"""`download` tasks (Kestra's `core.http.Download`) on a real server and worker against a real local
HTTP server: a 20 MiB body streamed into storage and read back through a later task's `inputFiles`
(sha256 checked), the activity's memory far below the body's size, `maxSize` failing once with
nothing kept, a 404 as `HttpStatus`, an empty body, and a secret sent in a header and a URL query
yet absent from the error."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import tracemalloc
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities import storage
from activities.api import DownloadRequest
from activities.download import run_download
from temporal_flows.expressions.references import is_reference
from tests.support import fill, run_flow, task_run, write_flow

MIB = 1024 * 1024
VALUE = f"tok-{uuid.uuid4().hex}"


def block(index: int) -> bytes:
    """The `index`-th MiB of every generated body: pseudo-random hex text (no repetition helps; text,
    since a template reading a stored file reads it as text, see the report on binary files)."""
    return random.Random(index).randbytes(MIB // 2).hex().encode()


def digest(mebibytes: int) -> str:
    hasher = hashlib.sha256()
    for index in range(mebibytes):
        hasher.update(block(index))
    return hasher.hexdigest()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        if parts[0] in ("blob", "stream") and len(parts) == 3:  # /blob/<MiB>/<name>: with a Content-Length; /stream/...: without
            self._body(int(parts[1]), announce=parts[0] == "blob")
        elif parts[0] == "empty":
            self._plain(200, b"")
        elif parts[0] == "private":
            allowed = self.headers.get("Authorization") == f"Bearer {VALUE}" and query == f"token={VALUE}"
            self._plain(200 if allowed else 401, b"secret data" if allowed else b"no")
        else:
            self._plain(404, b"no such path")

    def _plain(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self, mebibytes: int, announce: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if announce:
            self.send_header("Content-Length", str(mebibytes * MIB))
        self.end_headers()
        try:
            for index in range(mebibytes):
                self.wfile.write(block(index))
        except OSError:
            pass  # the client stopped reading (maxSize)
        self.close_connection = True


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def api_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(VALUE.encode()).decode())
    return VALUE


async def test_a_20_mib_download_is_read_by_a_later_task_through_input_files(client: Client, worker: str, server: str, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: download_big
        namespace: tests
        tasks:
          - id: fetch
            type: io.kestra.plugin.core.http.Download
            uri: <<url>>/blob/20/data.bin
          - id: check
            type: io.kestra.plugin.scripts.shell.Commands
            inputFiles:
              in/data.bin: "{{ outputs.fetch.uri }}"
            commands:
              - |
                sha=$(sha256sum in/data.bin | cut -d' ' -f1); size=$(stat -c %s in/data.bin)
                echo "::{\\"outputs\\": {\\"sha\\": \\"$sha\\", \\"size\\": $size} }::"
        """, url=server))
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS", result
    fetched = task_run(result, "fetch")["outputs"]
    assert fetched["code"] == 200 and fetched["length"] == 20 * MIB
    assert fetched["headers"]["content-type"] == ["application/octet-stream"]
    assert is_reference(fetched["uri"]) and fetched["uri"]["kind"] == "file" and fetched["uri"]["size"] == 20 * MIB
    assert task_run(result, "check")["outputs"]["vars"] == {"sha": digest(20), "size": 20 * MIB}


async def test_the_activity_streams_a_20_mib_body_in_far_less_memory(worker: str, server: str):
    """`worker` configured this process's storage; the activity runs here, so tracemalloc sees it all."""
    request = DownloadRequest(run_id=f"mem-{uuid.uuid4().hex[:8]}", task_id="fetch", task_run_id="t1", uri=f"{server}/stream/20/m.bin")
    tracemalloc.start()
    try:
        result = await ActivityEnvironment().run(run_download, request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.length == 20 * MIB
    assert storage.read_bytes(result.file, request.run_id)[:MIB] == block(0)
    assert peak < 4 * MIB, f"the activity's peak allocation was {peak / MIB:.1f} MiB for a 20 MiB body"


async def test_a_body_over_max_size_fails_once_and_nothing_is_kept(client: Client, worker: str, server: str, tmp_path: Path):
    name = f"over-{uuid.uuid4().hex[:8]}.bin"
    flow = write_flow(tmp_path, fill("""
        id: download_over
        namespace: tests
        tasks:
          - id: unannounced
            type: download
            uri: <<url>>/stream/3/<<name>>
            maxSize: 1048576
            allowFailure: true
          - id: announced
            type: io.kestra.plugin.fs.http.Download
            uri: <<url>>/blob/3/<<name>>
            maxSize: 1048576
        """, url=server, name=name))
    result = await run_flow(client, flow, worker)
    assert result["state"] == "FAILED"
    for task_id in ("unannounced", "announced"):
        run = task_run(result, task_id)
        assert run["attempts"] == 1 and run["error"]["type"] == "ResponseTooLarge", run
        assert "maxSize (1048576 bytes)" in run["error"]["message"]
    root = Path(storage.settings().root)
    assert not list(root.rglob(name)), "a partial download was kept in storage"


async def test_a_404_fails_with_its_status_and_an_empty_body_fails_unless_allowed(client: Client, worker: str, server: str, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: download_errors
        namespace: tests
        tasks:
          - id: missing
            type: download
            uri: <<url>>/nothing/here
            allowFailure: true
          - id: empty
            type: download
            uri: <<url>>/empty
            allowFailure: true
          - id: empty_ok
            type: download
            uri: <<url>>/empty
            failOnEmptyResponse: false
        """, url=server))
    result = await run_flow(client, flow, worker)
    missing, empty, empty_ok = (task_run(result, name) for name in ("missing", "empty", "empty_ok"))
    assert missing["error"]["type"] == "HttpStatus" and "HTTP 404" in missing["error"]["message"], missing
    assert missing["attempts"] == 1 and missing["outputs"]["code"] == 404
    assert empty["error"]["type"] == "EmptyResponse" and empty["attempts"] == 1, empty
    assert empty_ok["state"] == "SUCCESS" and empty_ok["outputs"]["length"] == 0, empty_ok
    assert is_reference(empty_ok["outputs"]["uri"]) and empty_ok["outputs"]["uri"]["size"] == 0


async def test_secrets_reach_the_request_and_never_its_error(client: Client, worker: str, server: str, tmp_path: Path, api_token: str):
    flow = write_flow(tmp_path, fill("""
        id: download_secret
        namespace: tests
        tasks:
          - id: private
            type: download
            uri: "<<url>>/private?token={{ secret('API_TOKEN') }}"
            headers:
              Authorization: "Bearer {{ secret('API_TOKEN') }}"
          - id: refused
            type: download
            uri: "<<url>>/private?token={{ secret('API_TOKEN') }}"
            headers:
              Authorization: "Bearer {{ secret('API_TOKEN') }}x"
        """, url=server))
    result = await run_flow(client, flow, worker)
    private, refused = task_run(result, "private"), task_run(result, "refused")
    assert private["state"] == "SUCCESS" and private["outputs"]["length"] == len(b"secret data"), private
    assert refused["error"]["type"] == "HttpStatus" and "HTTP 401" in refused["error"]["message"], refused
    assert api_token not in str(result), "the secret leaked into the run's result"
    assert "/private?****" in refused["error"]["message"], refused["error"]["message"]

