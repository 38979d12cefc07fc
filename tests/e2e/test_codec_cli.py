"""The payload codec through the real CLI (separate `tflow` processes, the session's dev server, an
in-process worker): without a key, `tflow run` with a SECRET input warns once, naming
TFLOW_CODEC_KEY; with the key in its environment it starts the run encrypted (no warning, nothing
secret in the history) and reads the result; a bad key exits 2 with a reason; `tflow codec-server`
serves the key to the Web UI and stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import uuid
from pathlib import Path

import aiohttp
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from client.codec import KEY_ENV, EncryptionCodec, load_key_ring
from client.connection import connect
from client.worker import create_worker
from tests.support import REPO, cli_env, tflow, write_flow

SECRET = "pw-" + uuid.uuid4().hex[:12]
KEY = base64.b64encode(os.urandom(32)).decode()
FLOW = """\
id: codec-cli-{suffix}
namespace: e2e.codec
inputs:
  - id: password
    type: SECRET
  - id: note
    type: SECRET
    required: false
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "len {{{{ inputs.password | length }}}}"
"""


async def tflow_cli(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *tflow(*args), cwd=REPO, env=cli_env(**env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert "Traceback" not in stderr.decode(), stderr.decode()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


def flow(tmp_path: Path) -> Path:
    return write_flow(tmp_path, FLOW.format(suffix=uuid.uuid4().hex[:8]), "secret.yaml")


async def test_run_without_a_key_warns_once_that_the_secret_is_stored_in_plain_text(
        worker: str, temporal_address: str, client: Client, tmp_path: Path):
    code, stdout, stderr = await tflow_cli(
        "run", str(flow(tmp_path)), "--json", "--address", temporal_address, "--task-queue", worker, "--input", f"password={SECRET}")
    assert code == 0, stderr
    result = json.loads(stdout)  # the warning never mixes into the JSON
    assert result["state"] == "SUCCESS" and result["task_runs"][0]["outputs"]["value"] == f"len {len(SECRET)}"
    warnings = [line for line in stderr.splitlines() if "TFLOW_CODEC_KEY" in line]
    assert len(warnings) == 1, stderr
    assert "SECRET input `password` will be stored in plain text" in warnings[0]  # `note` was not given
    assert SECRET not in stderr
    events = [event async for event in client.get_workflow_handle(result["run_id"]).fetch_history_events()]
    assert any(SECRET.encode() in event.SerializeToString() for event in events)  # what the warning is about


async def test_run_with_a_key_is_encrypted_end_to_end_and_silent(
        temporal_address: str, client: Client, task_queue: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    secure = await connect(temporal_address)  # the same wiring as every command: the key from the environment
    monkeypatch.delenv(KEY_ENV)
    async with create_worker(secure, task_queue, graceful_shutdown_s=5):
        code, stdout, stderr = await tflow_cli(
            "run", str(flow(tmp_path)), "--json", "--address", temporal_address, "--task-queue", task_queue,
            "--input", f"password={SECRET}", TFLOW_CODEC_KEY=KEY)
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["state"] == "SUCCESS" and result["task_runs"][0]["outputs"]["value"] == f"len {len(SECRET)}"
    assert "TFLOW_CODEC_KEY" not in stderr and "plain text" not in stderr
    events = [event async for event in client.get_workflow_handle(result["run_id"]).fetch_history_events()]
    assert events and not any(SECRET.encode() in event.SerializeToString() for event in events)
    started = events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == b"binary/encrypted"

    # Another key cannot read the run: a configuration problem (exit 2) naming the key id it needs.
    other = base64.b64encode(os.urandom(32)).decode()
    code, _, stderr = await tflow_cli("status", result["run_id"], "--address", temporal_address, TFLOW_CODEC_KEY=f"other:{other}")
    assert code == 2, stderr
    assert "internal error" not in stderr and "sha256-" in stderr, stderr

async def test_a_bad_key_is_a_usage_error_before_anything_starts(temporal_address: str, tmp_path: Path):
    short = base64.b64encode(os.urandom(8)).decode()
    code, stdout, stderr = await tflow_cli(
        "run", str(flow(tmp_path)), "--address", temporal_address, "--input", f"password={SECRET}", TFLOW_CODEC_KEY=short)
    assert code == 2 and stdout == ""
    assert "TFLOW_CODEC_KEY: the key must be 32 bytes (AES-256) in base64, got 8 bytes" in stderr
    assert short not in stderr
    code, _, stderr = await tflow_cli("codec-server", "--port", "0", TFLOW_CODEC_KEY_FILE=str(tmp_path / "absent"))
    assert code == 2 and f"TFLOW_CODEC_KEY_FILE={tmp_path / 'absent'}: cannot read it" in stderr
    code, _, stderr = await tflow_cli("codec-server", "--port", "0")
    assert code == 2 and "needs the key the workers use: set TFLOW_CODEC_KEY or TFLOW_CODEC_KEY_FILE" in stderr


async def test_codec_server_command_decodes_for_the_web_ui_and_stops_on_ctrl_c(tmp_path: Path):
    keys = tmp_path / "keys"
    keys.write_text(f"new:{base64.b64encode(os.urandom(32)).decode()}\nold:{KEY}\n")
    old = EncryptionCodec(load_key_ring({KEY_ENV: f"old:{KEY}"}))
    proc = await asyncio.create_subprocess_exec(
        *tflow("codec-server", "--port", "0", "--cors-origin", "http://127.0.0.1:9999"), cwd=REPO,
        env=cli_env(TFLOW_CODEC_KEY_FILE=str(keys)), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
        match = re.match(r"Codec server at (http://127\.0\.0\.1:\d+) \(keys from .*keys: new \(encrypting\), old\)", banner)
        assert match, banner
        sealed = await old.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')])  # by a worker of old
        body = json_format.MessageToJson(Payloads(payloads=sealed))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{match.group(1)}/default/decode", data=body, headers={
                    "Content-Type": "application/json", "Origin": "http://127.0.0.1:9999", "X-Namespace": "default"}) as response:
                assert response.status == 200, await response.text()
                assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:9999"
                [plain] = json_format.Parse(await response.text(), Payloads()).payloads
        assert plain.metadata["encoding"] == b"json/plain" and plain.data == b'"x"'
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
