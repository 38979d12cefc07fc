"""`http` tasks and output extractors on a real server against a real local HTTP server the test
starts (SPEC §4): a token extracted by JMESPath sent as the next task's header, a 500 failing with
its status, a 503 retried by the task's `retry` until the third attempt, extractor failures named,
and a cancelled request that the server sees closed within about a second."""

from __future__ import annotations

import json
import select
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.client import Client

from tests.support import duration, fill, run_flow, task_run, write_flow

TOKEN = "tok-7f3a"


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[dict[str, Any]] = []
        self.hits: Counter[str] = Counter()
        self.slow_closed_at: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: LocalServer

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        self.server.hits[self.path] += 1

    def do_POST(self) -> None:
        self._record()
        if self.path == "/login":
            credentials = json.loads(self.server.seen[-1]["body"] or "{}")
            self._send(200, {"access_token": TOKEN, "user": credentials.get("user")})
        else:
            self._send(404, {"error": "no such path"})

    def do_GET(self) -> None:
        self._record()
        if self.path == "/me":
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                self._send(200, {"name": "ann", "roles": ["admin", "dev"]})
            else:
                self._send(401, {"error": "bad token"})
        elif self.path == "/boom":
            self._send(500, "database down: connection refused by db-7", "text/plain")
        elif self.path.startswith("/flaky"):
            if self.server.hits[self.path] < 3:
                self._send(503, "try later", "text/plain")
            else:
                self._send(200, {"ok": True, "hits": self.server.hits[self.path]})
        elif self.path == "/text":
            self._send(200, "plain words", "text/plain")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/text")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self._send(200, "x" * (1024 * 1024 + 1), "text/plain")
        elif self.path == "/whoami":
            self._send(200, {"authorization": self.headers.get("Authorization")})
        elif self.path == "/slow":
            self._hold()
        else:
            self._send(404, {"error": "no such path"})

    def _hold(self) -> None:
        """Never answer; note when the client closes the connection (readable with no data)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1, 0x2):  # MSG_PEEK: b"" means closed
                self.server.slow_closed_at = time.monotonic()
                return


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    httpd = LocalServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_token_from_one_response_is_the_next_request_header(client: Client, worker: str, server: LocalServer, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: http_token
        namespace: tests
        tasks:
          - id: login
            type: io.kestra.plugin.core.http.Request
            uri: <<url>>/login
            method: POST
            body: '{"user": "ann"}'
            contentType: application/json
            output:
              - {name: token, type: jmespath, value: access_token}
          - id: me
            type: http
            url: <<url>>/me
            headers:
              Authorization: "Bearer {{ outputs.login.token }}"
            output:
              - {name: first_role, type: jmespath, value: "roles[0]"}
              - {name: whole, type: json}
              - {name: raw, type: text}
        outputs:
          - {id: who, type: STRING, value: "{{ outputs.me.body.name }}"}
        """, url=server.url))
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS", result
    login, me = task_run(result, "login"), task_run(result, "me")
    assert login["outputs"]["token"] == TOKEN
    assert login["outputs"]["code"] == login["outputs"]["status"] == 200
    assert login["outputs"]["body"] == {"access_token": TOKEN, "user": "ann"}, "a JSON response's body is parsed"
    assert login["outputs"]["headers"]["content-type"] == ["application/json"]
    sent = [seen for seen in server.seen if seen["path"] in ("/login", "/me")][-2:]
    assert json.loads(sent[0]["body"]) == {"user": "ann"} and sent[0]["headers"]["Content-Type"] == "application/json"
    assert sent[1]["headers"]["Authorization"] == f"Bearer {TOKEN}", "the extracted token travelled as a header"
    assert me["outputs"]["first_role"] == "admin"
    assert me["outputs"]["whole"] == {"name": "ann", "roles": ["admin", "dev"]}
    assert json.loads(me["outputs"]["raw"]) == me["outputs"]["whole"]
    assert result["outputs"]["who"] == "ann"


async def test_a_500_fails_the_task_with_its_status_and_body(client: Client, worker: str, server: LocalServer, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: http_500
        namespace: tests
        tasks:
          - id: call
            type: http
            uri: <<url>>/boom
          - id: never
            type: http
            uri: <<url>>/text
        """, url=server.url))
    result = await run_flow(client, flow, worker)
    assert result["state"] == "FAILED"
    call = task_run(result, "call")
    assert call["state"] == "FAILED" and call["attempts"] == 1
    assert call["error"]["type"] == "HttpStatus"
    assert "HTTP 500" in call["error"]["message"] and "database down" in call["error"]["message"]
    assert call["outputs"]["code"] == 500, "a failed response's status is still an output"
    assert [run["task_id"] for run in result["task_runs"]] == ["call"]


async def test_a_503_retried_by_the_task_succeeds_on_the_third_attempt(client: Client, worker: str, server: LocalServer, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: http_retry
        namespace: tests
        tasks:
          - id: flaky
            type: http
            uri: <<url>>/flaky-<<key>>
            retry: {type: constant, maxAttempt: 5, interval: PT0.2S}
            output:
              - {name: hits, type: jmespath, value: hits}
        """, url=server.url, key=tmp_path.name))
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS", result
    flaky = task_run(result, "flaky")
    assert flaky["attempts"] == 3
    assert flaky["outputs"]["hits"] == 3 and flaky["outputs"]["status"] == 200


async def test_allowed_status_and_connection_errors(client: Client, worker: str, server: LocalServer, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: http_allowed
        namespace: tests
        tasks:
          - id: tolerated
            type: http
            uri: <<url>>/boom
            allowed_status: ["2xx", 500]
          - id: kestra_style
            type: http
            uri: <<url>>/nowhere
            options: {allowFailed: true}
          - id: unreachable
            type: http
            allowFailure: true
            uri: http://127.0.0.1:9/never
          - id: too_big
            type: http
            allowFailure: true
            uri: <<url>>/big
          - id: capped
            type: http
            uri: <<url>>/text
            options: {maxContentLength: 5}
        """, url=server.url))
    result = await run_flow(client, flow, worker)
    assert task_run(result, "tolerated")["state"] == "SUCCESS"
    assert task_run(result, "tolerated")["outputs"]["body"] == "database down: connection refused by db-7"
    assert task_run(result, "kestra_style")["outputs"]["code"] == 404
    unreachable = task_run(result, "unreachable")
    assert unreachable["state"] == "WARNING" and unreachable["error"]["type"] == "ConnectionError"
    assert "127.0.0.1:9" in unreachable["error"]["message"]
    too_big = task_run(result, "too_big")
    assert too_big["error"]["type"] == "ResponseTooLarge" and "1024 KiB" in too_big["error"]["message"]
    assert task_run(result, "capped")["error"]["type"] == "ResponseTooLarge", "maxContentLength lowers the cap"


async def test_an_extractor_that_does_not_match_fails_naming_it(client: Client, worker: str, server: LocalServer, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: http_extract_fail
        namespace: tests
        tasks:
          - id: missing
            type: http
            uri: <<url>>/me
            headers: {Authorization: "Bearer <<token>>"}
            output:
              - {name: email, type: jmespath, value: contact.email}
          - id: not_json
            type: http
            uri: <<url>>/text
            output:
              - {name: data, type: json}
        """, url=server.url, token=TOKEN))
    result = await run_flow(client, flow, worker)
    missing = task_run(result, "missing")
    assert missing["state"] == "FAILED" and missing["error"]["type"] == "ExtractorFailed"
    message = missing["error"]["message"]
    assert "`email`" in message and "contact.email" in message and '"name": "ann"' in message, message
    assert [run["task_id"] for run in result["task_runs"]] == ["missing"]


async def test_commands_and_script_stdout_extractors(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: commands_extract
        namespace: tests
        tasks:
          - id: emit
            type: commands
            commands:
              - |
                echo '::{"outputs": {"n": 1}}::'
                echo '{"rows": [{"id": 1}, {"id": 2}], "ok": true}'
            output:
              - {name: data, type: json}
              - {name: second, type: jmespath, value: "rows[1].id"}
              - {name: raw, type: text}
          - id: py
            type: io.kestra.plugin.scripts.python.Script
            script: |
              import json
              print(json.dumps({"total": sum(range(5))}))
            output:
              - {name: total, type: jmespath, value: total}
          - id: use
            type: commands
            commands:
              - echo 'not json'
            output:
              - {name: parsed, type: json}
        """)
    result = await run_flow(client, flow, worker)
    emit = task_run(result, "emit")
    assert emit["state"] == "SUCCESS"
    assert emit["outputs"]["data"] == {"rows": [{"id": 1}, {"id": 2}], "ok": True}
    assert emit["outputs"]["second"] == 2
    assert emit["outputs"]["raw"] == '{"rows": [{"id": 1}, {"id": 2}], "ok": true}', "protocol lines are not output text"
    assert emit["outputs"]["vars"] == {"n": 1}
    assert task_run(result, "py")["outputs"]["total"] == 10, "a script's stdout is read the same way"
    use = task_run(result, "use")
    assert use["state"] == "FAILED" and use["error"]["type"] == "ExtractorFailed"
    assert "`parsed`" in use["error"]["message"] and "not json" in use["error"]["message"]


async def test_a_cancelled_request_is_aborted_within_a_second(client: Client, worker: str, server: LocalServer, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: http_cancel
        namespace: tests
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            timeout: PT1S
            tasks:
              - id: slow
                type: http
                uri: <<url>>/slow
        """, url=server.url))
    server.slow_closed_at = None
    started = time.monotonic()
    result = await run_flow(client, flow, worker)
    slow = task_run(result, "slow")
    assert slow["state"] in ("CANCELLED", "FAILED"), slow
    assert duration(slow) < 3.0, duration(slow)
    assert server.slow_closed_at is not None, "the server saw the connection closed"
    assert server.slow_closed_at - started < 3.0


async def test_redirects_auth_and_the_task_timeout(client: Client, worker: str, server: LocalServer, tmp_path: Path):
    flow = write_flow(tmp_path, fill("""
        id: http_options
        namespace: tests
        tasks:
          - id: followed
            type: http
            uri: <<url>>/moved
          - id: not_followed
            type: http
            uri: <<url>>/moved
            options: {followRedirects: false, allowedResponseCodes: [302]}
          - id: basic
            type: http
            uri: <<url>>/whoami
            options: {auth: {type: BASIC, username: ann, password: s3cret}}
          - id: bearer
            type: http
            uri: <<url>>/whoami
            options: {auth: {type: BEARER, token: "{{ flow.id }}-tok"}}
          - id: too_slow
            type: http
            uri: <<url>>/slow
            timeout: PT1S
        """, url=server.url))
    result = await run_flow(client, flow, worker)
    followed = task_run(result, "followed")["outputs"]
    assert followed["body"] == "plain words" and followed["uri"].endswith("/text")
    not_followed = task_run(result, "not_followed")["outputs"]
    assert not_followed["code"] == 302 and not_followed["headers"]["location"] == ["/text"]
    assert task_run(result, "basic")["outputs"]["body"]["authorization"] == "Basic YW5uOnMzY3JldA=="
    assert task_run(result, "bearer")["outputs"]["body"]["authorization"] == "Bearer http_options-tok"
    too_slow = task_run(result, "too_slow")
    assert too_slow["state"] == "FAILED" and too_slow["error"]["type"] == "Timeout", too_slow
    assert duration(too_slow) < 3.0
