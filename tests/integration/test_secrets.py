"""Secrets on a real server and worker (SPEC §10, issue 14 D): `secret('NAME')` reaches a task's
environment, command line and HTTP request with its value while the run's history (read with the
Temporal client, every event's bytes) holds no trace of it; the task's log and outputs show `****`;
an HTTP error's URL loses its query; a running task's `ps`-visible command lines hold no script text;
a task's environment holds none of the worker's credentials unless `--pass-env` names them."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.client import Client, WorkflowHandle

from activities.storage import read_value
from client.codec import with_environment_codec
from client.runs import start_run, wait_result
from client.task_logs import read_task_logs
from client.worker import create_worker
from temporal_flows.expressions.references import is_reference
from temporal_flows.language.loader import load_flow
from tests.support import REPO, cli_env, fill, task_run, tflow, wait_until, write_flow

VALUE = f"tok-{uuid.uuid4().hex}"
"""The secret's value on the worker; a fresh one per session, so a trace of it can only come from here."""


@pytest.fixture
def api_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(VALUE.encode()).decode())
    return VALUE


async def history_bytes(client: Client, run_id: str) -> bytes:
    """Every event of the run's history as the server keeps it (payloads included, as their bytes)."""
    events = [event async for event in client.get_workflow_handle(run_id).fetch_history_events()]
    return b"".join(event.SerializeToString() for event in events)


def assert_no_trace(history: bytes, value: str) -> None:
    for form in (value, base64.b64encode(value.encode()).decode(), json.dumps(value)[1:-1]):
        assert form.encode() not in history, f"the history holds {form!r}"


async def start(client: Client, queue: str, folder: Path, text: str, **tokens: Any) -> WorkflowHandle[Any, Any]:
    return await start_run(client, load_flow(write_flow(folder, fill(text, **tokens))), task_queue=queue)


COMMANDS = """
id: secrets_in_commands
namespace: tests
tasks:
  - id: use
    type: commands
    env:
      TOKEN: "{{ secret('API_TOKEN') }}"
    commands:
      - printf '%s' "$TOKEN" > <<out>>/env.txt
      - printf '%s' '{{ secret("API_TOKEN") }}' > <<out>>/argument.txt
      - echo "token is $TOKEN"
      - 'echo "::{\\"outputs\\": {\\"seen\\": \\"$TOKEN\\"}}::"'
      - echo "and on stderr $TOKEN" >&2
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    taskRunner: {type: Process}
    script: |
      token = "{{ secret('API_TOKEN') }}"
      open("<<out>>/script.txt", "w").write(token)
      print("python has", token)
"""


async def test_a_secret_reaches_env_and_command_line_and_leaves_no_trace(client: Client, worker: str, tmp_path: Path,
                                                                          api_token: str) -> None:
    handle = await start(client, worker, tmp_path, COMMANDS, out=tmp_path)
    result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result["error"]
    assert (tmp_path / "env.txt").read_text() == api_token
    assert (tmp_path / "argument.txt").read_text() == api_token
    assert task_run(result, "use")["outputs"]["vars"] == {"seen": "****"}

    assert (tmp_path / "script.txt").read_text() == api_token
    use_log, py_log = await read_task_logs(handle)
    messages = [line["message"] for line in use_log.lines]
    assert messages == ["token is ****", "and on stderr ****"], messages
    assert [line["message"] for line in py_log.lines] == ["python has ****"]

    history = await history_bytes(client, handle.id)
    assert_no_trace(history, api_token)
    assert b"~tflow-secret~API_TOKEN~" in history, "the activity's input carries the placeholder, not the value"


MISSING = """
id: missing_secret
namespace: tests
tasks:
  - id: use
    type: commands
    commands: ["echo {{ secret('NOT_SET_ANYWHERE') }}"]
  - id: call
    type: http
    uri: "http://127.0.0.1:9/?k={{ secret('NOT_SET_EITHER') }}"
    allowFailure: true
"""


async def test_a_missing_secret_fails_its_task_naming_it_and_where_it_was_looked_up(client: Client, worker: str,
                                                                                    tmp_path: Path) -> None:
    result = await wait_result(await start(client, worker, tmp_path, MISSING))
    use = task_run(result, "use")
    assert use["state"] == "FAILED" and use["error"]["type"] == "SecretNotFound", use["error"]
    assert "secret('NOT_SET_ANYWHERE')" in use["error"]["message"]
    assert "SECRET_NOT_SET_ANYWHERE" in use["error"]["message"]


# -- HTTP ----------------------------------------------------------------------------------------


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.seen: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RecordingHandler(BaseHTTPRequestHandler):
    """Records each request; `/echo` answers with the API key header it got, `/boom` with a 500."""

    server: Recorder

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "headers": dict(self.headers)})
        status, body = (200, {"key": self.headers.get("X-Api-Key")}) if self.path.startswith("/echo") else (500, "down")
        if self.path.startswith("/big"):  # stored by reference (over 128 KiB), its value masked first
            status, body = 200, {"key": self.headers.get("X-Api-Key"), "pad": "x" * 200_000}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


HTTP = """
id: secrets_in_http
namespace: tests
tasks:
  - id: call
    type: http
    uri: "<<url>>/echo?token={{ secret('API_TOKEN') }}"
    headers:
      X-Api-Key: "{{ secret('API_TOKEN') }}"
  - id: big
    type: http
    uri: "<<url>>/big"
    headers: {X-Api-Key: "{{ secret('API_TOKEN') }}"}
  - id: basic
    type: http
    uri: "<<url>>/echo"
    options: {auth: {type: BASIC, username: ann, password: "{{ secret('API_TOKEN') }}"}}
  - id: fails
    type: http
    uri: "<<url>>/boom?token={{ secret('API_TOKEN') }}"
    allowFailure: true
  - id: unreachable
    type: http
    uri: "http://127.0.0.1:<<closed>>/p?session=plain-but-private"
    allowFailure: true
"""


async def test_a_secret_reaches_the_http_server_and_errors_lose_their_query(client: Client, worker: str, tmp_path: Path,
                                                                            api_token: str, recorder: Recorder) -> None:
    handle = await start(client, worker, tmp_path, HTTP, url=recorder.url, closed=closed_port())
    result = await wait_result(handle)
    assert result["state"] == "WARNING", result["error"]
    first = recorder.seen[0]
    assert first["path"] == f"/echo?token={api_token}" and first["headers"]["X-Api-Key"] == api_token
    call = task_run(result, "call")["outputs"]
    assert call["body"] == {"key": "****"} and call["uri"] == f"{recorder.url}/echo?token=****"

    stored = task_run(result, "big")["outputs"]["body"]
    assert is_reference(stored) and read_value(stored, handle.id)["key"] == "****", stored
    recorder.seen.pop(1)
    authorization = recorder.seen[1]["headers"]["Authorization"]
    assert base64.b64decode(authorization.removeprefix("Basic ")).decode() == f"ann:{api_token}"
    boom = task_run(result, "fails")["error"]
    assert recorder.seen[2]["path"] == f"/boom?token={api_token}"
    assert boom["type"] == "HttpStatus" and f"{recorder.url}/boom?****" in boom["message"], boom
    unreachable = task_run(result, "unreachable")["error"]
    assert unreachable["type"] == "ConnectionError", unreachable
    assert "/p?****" in unreachable["message"] and "plain-but-private" not in unreachable["message"], unreachable

    assert_no_trace(await history_bytes(client, handle.id), api_token)


# -- what `ps` shows -----------------------------------------------------------------------------


RUNNING = """
id: argv_of_a_task
namespace: tests
tasks:
  - id: wait
    type: commands
    interpreter: <<interpreter>>
    commands:
      - echo "$$ $(pwd)" > <<out>>/started.tmp && mv <<out>>/started.tmp <<out>>/started
      - "# <<marker>> {{ secret('API_TOKEN') }}"
      - while [ ! -e <<out>>/go ]; do sleep 0.05; done
      - echo <<marker>>
"""


def process_group(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                members.append(int(entry))
    return members


def _command_line(pid: int) -> bytes | None:
    """A process's argv as one line; None when it ended since it was listed (a short-lived child)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None


@pytest.mark.parametrize("interpreter", ['["/bin/sh", "-c"]', '["/bin/bash", "-c"]'], ids=["sh-inline", "bash"])
async def test_a_running_tasks_command_lines_hold_no_script(client: Client, worker: str, tmp_path: Path, api_token: str,
                                                           interpreter: str) -> None:
    if "bash" in interpreter and shutil.which("bash") is None:
        pytest.skip("no bash here")
    marker = f"marker-{uuid.uuid4().hex}"
    handle = await start(client, worker, tmp_path, RUNNING, out=tmp_path, marker=marker, interpreter=interpreter)
    started = tmp_path / "started"
    try:
        assert await asyncio.to_thread(wait_until, started.exists, 20), "the task did not start"
        shell, workdir = started.read_text().split()
        pgid = int(Path(f"/proc/{shell}/stat").read_text().rsplit(")", 1)[1].split()[2])  # the supervisor's pid
        members = process_group(pgid)
        assert pgid in members and len(members) >= 2, members  # the supervisor and the script's shell at least
        command_lines = {pid: line for pid in members if (line := _command_line(pid)) is not None}
        for pid, command_line in command_lines.items():
            assert marker.encode() not in command_line and api_token.encode() not in command_line, (pid, command_line)
            assert b"tflow-secret" not in command_line, (pid, command_line)
        assert any(b"./.tflow-script" in line for line in command_lines.values()), command_lines
        script = Path(workdir) / ".tflow-script"
        assert script.stat().st_mode & 0o777 == 0o600
        assert api_token in script.read_text()  # resolved on the worker, in the file only the worker's user reads
    finally:
        (tmp_path / "go").touch()
    result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result["error"]
    assert not Path(workdir).exists()


# -- the task's environment ----------------------------------------------------------------------


ENV = """
id: environment
namespace: tests
tasks:
  - id: env
    type: commands
    env: {OWN: mine}
    commands: ["env | cut -d= -f1 | sort > <<out>>/<<name>>"]
"""

WORKER_ONLY = {"TEMPORAL_API_KEY": "k-worker", "TFLOW_CODEC_KEY": "not-for-tasks", "SECRET_API_TOKEN": "eA==",
               "MY_SETTING": "x", "MY_OTHER": "y", "LC_TIME": "C"}


async def test_a_task_gets_the_allow_listed_environment_and_what_pass_env_names(
        client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def names(pass_env: list[str] | None, file: str) -> set[str]:
        monkeypatch.delenv("TFLOW_CODEC_KEY", raising=False)
        async with create_worker(client, task_queue, graceful_shutdown_s=5, pass_env=pass_env):
            for name, value in WORKER_ONLY.items():  # set after the worker's creation, so its codec reads none
                monkeypatch.setenv(name, value)
            result = await wait_result(await start(client, task_queue, tmp_path, ENV, out=tmp_path, name=file))
            assert result["state"] == "SUCCESS", result["error"]
        return set((tmp_path / file).read_text().split())

    plain = await names(None, "plain")
    assert {"PATH", "HOME", "OWN", "LC_TIME"} <= plain
    assert not {name for name in plain if name.startswith(("TEMPORAL_", "SECRET_", "TFLOW_CODEC", "MY_"))}, plain
    passed = await names(["MY_*", "TEMPORAL_API_KEY"], "passed")
    assert {"MY_SETTING", "MY_OTHER", "TEMPORAL_API_KEY", "OWN"} <= passed
    assert not {name for name in passed if name.startswith(("SECRET_", "TFLOW_CODEC"))}, passed


# -- tflow status --------------------------------------------------------------------------------


STATUS = """
id: status_masks
namespace: tests
inputs:
  - id: password
    type: SECRET
tasks:
  - id: keep
    type: return
    format: "{{ inputs.password }} and {{ secret('API_TOKEN') }}"
  - id: say
    type: log
    message: "the token: {{ secret('API_TOKEN') }}"
  - id: echo
    type: commands
    commands: ["echo 'password: {{ inputs.password }}'", "exit 1"]
"""


async def test_tflow_status_masks_secret_inputs_and_placeholders(client: Client, worker: str, tmp_path: Path,
                                                                 temporal_address: str, api_token: str) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    flow = load_flow(write_flow(tmp_path, STATUS))
    handle = await start_run(client, flow, task_queue=worker, inputs={"password": password}, warn=lambda _: None)
    result = await wait_result(handle)
    assert result["state"] == "FAILED"
    assert password in json.dumps(result), "the reader's side (not the worker) is what this test is about"
    done = await asyncio.to_thread(subprocess.run, tflow("status", handle.id, "--logs", "--json", "--address", temporal_address),
                                   cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout and api_token not in done.stdout and "~tflow-secret~" not in done.stdout
    shown = json.loads(done.stdout)
    assert task_run(shown, "keep")["outputs"]["value"] == "**** and ****"
    echo_log = [attempt for attempt in shown["logs"] if attempt["task_id"] == "echo"]
    assert [line["message"] for line in echo_log[0]["lines"]] == ["password: ****"]
    plain = await asyncio.to_thread(subprocess.run, tflow("status", handle.id, "--logs", "--address", temporal_address),
                                    cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "password: ****" in plain.stdout and password not in plain.stdout, plain.stdout


# -- tflow worker --secrets --pass-env -----------------------------------------------------------


CLI_FLOW = """
id: worker_flags
namespace: tests
tasks:
  - id: use
    type: commands
    env: {FROM_FILE: "{{ secret('API_TOKEN') }}"}
    commands:
      - printf '%s' "$FROM_FILE" > <<out>>/token
      - env | cut -d= -f1 | sort > <<out>>/names
"""


async def test_tflow_worker_takes_secrets_from_a_directory_and_passes_only_named_variables(
        client: Client, temporal_address: str, task_queue: str, tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "API_TOKEN").write_text("from-the-directory\n")
    key = base64.b64encode(os.urandom(32)).decode()
    env = cli_env(TFLOW_CODEC_KEY=key, SECRET_API_TOKEN=base64.b64encode(b"from-the-environment").decode(),
                  MY_SETTING="passed", OTHER_SETTING="kept")
    refused = await asyncio.to_thread(subprocess.run, tflow("worker", "--secrets", str(tmp_path / "absent")), cwd=REPO,
                                      env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--secrets" in refused.stderr and "does not exist" in refused.stderr, refused.stderr
    with open(tmp_path / "worker.log", "wb") as sink:
        worker = subprocess.Popen(tflow("worker", "--address", temporal_address, "--task-queue", task_queue, "--drain-timeout", "1",
                                        "--secrets", str(secrets_dir), "--pass-env", "MY_*"),
                                  cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        encrypted = with_environment_codec(client, {"TFLOW_CODEC_KEY": key})  # the worker encrypts with the same key
        result = await wait_result(await start(encrypted, task_queue, tmp_path, CLI_FLOW, out=tmp_path))
        assert result["state"] == "SUCCESS", (result["error"], (tmp_path / "worker.log").read_text()[-2000:])
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert (tmp_path / "token").read_text() == "from-the-directory"  # --secrets comes before SECRET_NAME
    names = set((tmp_path / "names").read_text().split())
    assert "MY_SETTING" in names and "FROM_FILE" in names
    assert not names & {"TFLOW_CODEC_KEY", "SECRET_API_TOKEN", "OTHER_SETTING", "TEMPORAL_CONFIG_FILE"}, names


# -- SECRET inputs on the worker -----------------------------------------------------------------


SECRET_INPUT = """
id: secret_input_on_the_worker
namespace: tests
inputs:
  - id: password
    type: SECRET
tasks:
  - id: holds
    type: commands
    commands:
      - echo "login with {{ inputs.password }}"
      - 'echo "::{\\"outputs\\": {\\"again\\": \\"{{ inputs.password }}\\"}}::"'
      - echo "{{ inputs.password }}" >&2; exit 4
    allowFailure: true
  - id: plain
    type: commands
    commands: ["echo nothing secret"]
"""


async def test_the_worker_masks_the_secret_inputs_a_request_holds(client: Client, worker: str, tmp_path: Path) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    handle = await start_run(client, load_flow(write_flow(tmp_path, SECRET_INPUT)), task_queue=worker,
                             inputs={"password": password}, warn=lambda _: None)
    result = await wait_result(handle)
    holds = task_run(result, "holds")
    assert holds["state"] == "WARNING" and holds["error"]["message"] == "Command failed with exit code 4: ****", holds["error"]
    assert holds["outputs"]["vars"] == {"again": "****"}
    [attempt, _] = await read_task_logs(handle)
    assert [line["message"] for line in attempt.lines] == ["login with ****", "****"]

    requests: dict[str, dict[str, Any]] = {}
    async for event in handle.fetch_history_events():
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name == "tflow.commands":
            request = json.loads(attributes.input.payloads[0].data)
            requests[request["task_id"]] = request
        for outcome in (event.activity_task_completed_event_attributes, event.activity_task_failed_event_attributes):
            assert password.encode() not in outcome.SerializeToString(), "an activity's result or failure holds it"
    assert requests["holds"]["masked"] == [password] and not requests["plain"]["masked"]


WORKER_RENDERED = """
id: secret_rendered_on_a_worker
namespace: tests
tasks:
  - id: jq
    type: commands
    commands:
      - printf '%s' '{{ [7] | jq(".[0]") | first }}-{{ secret("API_TOKEN") }}' > <<out>>/jq.txt
"""


async def test_a_template_rendered_by_a_workers_render_process_keeps_its_secret(client: Client, worker: str, tmp_path: Path,
                                                                                 api_token: str) -> None:
    """jq runs only on a worker (in a render child process): the same template's secret() is still this run's."""
    handle = await start(client, worker, tmp_path, WORKER_RENDERED, out=tmp_path)
    result = await wait_result(handle)
    assert result["state"] == "SUCCESS", result["error"]
    assert (tmp_path / "jq.txt").read_text() == f"7-{api_token}"
    assert_no_trace(await history_bytes(client, handle.id), api_token)
