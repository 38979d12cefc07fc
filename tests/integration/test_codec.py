"""The encrypting payload codec on a real dev server with real workers (issue 14 D.2): with a key,
a SECRET input's bytes appear nowhere in the run's Temporal history (workflow input, activity
inputs and results, failures, memo, queries' answers), though a client holding the key reads the
run as usual; a run written with key A is finished and read by a worker and client holding keys B
(encrypting) and A; the codec server decodes the history's payloads over HTTP."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.workflowservice.v1 import DescribeScheduleRequest
from temporalio.client import Client

from client.codec import ENCODING, KEY_ID_METADATA, CodecDecodeError, CodecKey, EncryptionCodec, KeyRing, data_converter
from client.codec_server import serve
from client.runs import live_result, start_run, wait_result
from client.schedules import deploy, list_schedules, plan, undeploy
from client.task_logs import read_task_logs
from client.worker import create_worker
from temporal_flows.language.loader import load_flow
from tests.support import task_run, write_flow

SECRET = "s3cr3t-" + uuid.uuid4().hex[:12]
"""Random per session, so no flow text or fixture can hold it by chance."""
WEB_UI = "http://localhost:8233"

FLOW = """\
id: codec-{suffix}
namespace: it.codec
inputs:
  - id: password
    type: SECRET
  - id: user
    type: STRING
    defaults: ann
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: shell
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "shell sees {{{{ inputs.password }}}}"
      - id: say
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ inputs.user }}}}:{{{{ inputs.password | upper }}}}"
  - id: leak
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    commands:
      - echo "failing with {{{{ inputs.password }}}}" >&2
      - exit 3
outputs:
  - id: said
    type: STRING
    value: "{{{{ outputs.say.value }}}}"
"""


def ring(*names: str) -> KeyRing:
    return KeyRing(tuple(CodecKey(name, os.urandom(32)) for name in names))


async def codec_client(address: str, keys: KeyRing) -> Client:
    return await Client.connect(address, data_converter=data_converter(keys))


NOT_CODED = ("search_attributes", "patch-data")
"""What Temporal never passes through a codec: search attributes (the server indexes them) and the
SDK's own `workflow.patched` markers (a patch id, e.g. `pebble-templates`)."""


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in a history event but those no codec applies to (NOT_CODED)."""
    for field, value in message.ListFields():
        if field.message_type is None or field.name in NOT_CODED:
            continue
        if field.message_type.GetOptions().map_entry:
            items = [item for key, item in value.items() if key not in NOT_CODED]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payload):
                yield item
            elif isinstance(item, Message):
                yield from payloads_in(item)


def key_ids(events: list[Any]) -> set[str]:
    return {payload.metadata[KEY_ID_METADATA].decode() for event in events for payload in payloads_in(event)}


@pytest.fixture
def flow_path(tmp_path: Path) -> Path:
    return write_flow(tmp_path, FLOW.format(suffix=uuid.uuid4().hex[:8]), "codec.yaml")


async def test_secret_is_ciphertext_in_the_history_and_plain_to_the_key_holder(
        temporal_address: str, client: Client, task_queue: str, flow_path: Path):
    keys = ring("key-a")
    secure = await codec_client(temporal_address, keys)
    async with create_worker(secure, task_queue, graceful_shutdown_s=5):
        handle = await start_run(secure, load_flow(flow_path), task_queue=task_queue, inputs={"password": SECRET})
        result = await wait_result(handle)
        live = await live_result(handle)  # a query of the closed run: its answer is a payload too

    # Whoever holds the key reads the run as usual.
    assert result["state"] == "WARNING", result  # `leak` failed, allowed to
    assert result["outputs"] == {"said": f"ann:{SECRET.upper()}"}
    # The failure's message and an activity's result, decrypted; the worker masked the SECRET value in them.
    assert task_run(result, "leak")["error"]["message"] == "Command failed with exit code 3: failing with ****"
    logs = {attempt.task_id: attempt for attempt in await read_task_logs(handle)}
    assert [line["message"] for line in logs["shell"].lines] == ["shell sees ****"], logs["shell"]
    assert live["state"] == "WARNING" and len(live["task_runs"]) == len(result["task_runs"])

    # Temporal itself, and any client without the key, sees ciphertext only.
    events = [event async for event in client.get_workflow_handle(handle.id).fetch_history_events()]
    found = [payload for event in events for payload in payloads_in(event)]
    assert len(found) > 10  # the input, every activity's input and result, the memo, the failure, the result
    for event in events:
        raw = event.SerializeToString()
        for shown in (SECRET, SECRET.upper()):
            assert shown.encode() not in raw, (event.event_type, event)
    for payload in found:
        assert payload.metadata["encoding"] == ENCODING and payload.metadata[KEY_ID_METADATA] == b"key-a", payload.metadata
    started = events[0].workflow_execution_started_event_attributes
    assert started.memo.fields and all(p.metadata["encoding"] == ENCODING for p in started.memo.fields.values())
    with pytest.raises(Exception, match="binary/encrypted"):
        await client.get_workflow_handle(handle.id).result()

    # The codec server decrypts the history's payloads for the Web UI (its origin, a namespace path).
    body = json_format.MessageToJson(Payloads(payloads=list(started.input.payloads)))
    runner, port = await serve(EncryptionCodec(keys), "127.0.0.1", 0, [WEB_UI])
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/default/decode", data=body,
                                    headers={"Content-Type": "application/json", "Origin": WEB_UI, "X-Namespace": "default"}) as response:
                assert response.status == 200, await response.text()
                assert response.headers["Access-Control-Allow-Origin"] == WEB_UI
                decoded = json_format.Parse(await response.text(), Payloads())
    finally:
        await runner.cleanup()
    [plain] = decoded.payloads
    assert plain.metadata["encoding"] == b"json/plain"
    assert f'"password":"{SECRET}"'.encode() in plain.data.replace(b" ", b"")


async def test_key_rotation_a_run_written_with_key_a_is_finished_and_read_with_keys_b_and_a(
        temporal_address: str, client: Client, task_queue: str, flow_path: Path):
    old, new = ring("key-a"), None
    new = KeyRing((CodecKey("key-b", os.urandom(32)), old.keys[0]))
    before = await codec_client(temporal_address, old)
    # Started with key A while no worker runs: its input is sealed with A.
    handle = await start_run(before, load_flow(flow_path), task_queue=task_queue, inputs={"password": SECRET})

    after = await codec_client(temporal_address, new)
    async with create_worker(after, task_queue, graceful_shutdown_s=5):
        result = await wait_result(after.get_workflow_handle(handle.id))
    assert result["state"] == "WARNING" and result["outputs"] == {"said": f"ann:{SECRET.upper()}"}

    events = [event async for event in client.get_workflow_handle(handle.id).fetch_history_events()]
    started = events[0].workflow_execution_started_event_attributes
    assert {p.metadata[KEY_ID_METADATA] for p in started.input.payloads} == {b"key-a"}
    assert key_ids(events) == {"key-a", "key-b"}  # everything the worker wrote is sealed with B
    completed = events[-1].workflow_execution_completed_event_attributes
    assert [p.metadata[KEY_ID_METADATA] for p in completed.result.payloads] == [b"key-b"]

    # A process still holding only key A cannot read what B sealed, and says which key it lacks.
    with pytest.raises(CodecDecodeError, match="key-b"):
        await data_converter(old).decode(list(completed.result.payloads))
    # Nor does a wrong key under the right id decrypt (the GCM tag fails, no garbage comes out).
    impostor = KeyRing((CodecKey("key-b", os.urandom(32)),))
    with pytest.raises(CodecDecodeError, match="does not decrypt"):
        await data_converter(impostor).decode(list(completed.result.payloads))



SCHEDULED = """\
id: codec-schedule-{suffix}
namespace: it.codec
inputs:
  - id: password
    type: SECRET
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.password }}}}"
triggers:
  - id: yearly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 1 1 *"
    inputs:
      password: {secret}
"""


async def test_a_schedule_keeps_its_run_request_and_memo_encrypted_and_is_listed_with_the_key(
        temporal_address: str, client: Client, task_queue: str, tmp_path: Path):
    loaded = load_flow(write_flow(tmp_path, SCHEDULED.format(suffix=uuid.uuid4().hex[:8], secret=SECRET), "scheduled.yaml"))
    secure = await codec_client(temporal_address, ring("key-a"))
    [deployed] = await deploy(secure, loaded, plan(loaded), task_queue=task_queue)
    try:
        raw = await client.workflow_service.describe_schedule(
            DescribeScheduleRequest(namespace=client.namespace, schedule_id=deployed.schedule_id))
        assert SECRET.encode() not in raw.SerializeToString()
        action = raw.schedule.action.start_workflow
        sealed = [*action.input.payloads, *action.memo.fields.values()]
        assert sealed and all(payload.metadata["encoding"] == ENCODING for payload in sealed)
        # The memo names the schedule's flow; only a client with the key reads it.
        [row] = await list_schedules(secure, loaded)
        assert (row.schedule_id, row.flow, row.trigger, row.cron) == (
            deployed.schedule_id, f"it.codec.{loaded.flow.id}", "yearly", "0 0 1 1 *")
    finally:
        assert await undeploy(secure, loaded) == [deployed.schedule_id]
