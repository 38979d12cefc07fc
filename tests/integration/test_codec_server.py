"""The codec server over real HTTP (an aiohttp server on a free port, an aiohttp client): Temporal's
remote codec protocol round trip on any path ending in /encode or /decode, CORS for the Web UI's
origin only, and every bad request refused with a status and a reason (never a traceback)."""

from __future__ import annotations

import json
import os
from typing import Any, AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from client.codec import ENCODING, KEY_ID_METADATA, CodecKey, EncryptionCodec, KeyRing
from client.codec_server import MAX_PAYLOADS, serve

WEB_UI = "http://localhost:8233"
MAX_BODY = 64 * 1024
"""The test server's body bound (the real default is 32 MiB), so the refusal is cheap to reach."""
JSON = {"Content-Type": "application/json"}


def payloads_json(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=list(payloads)))


def plain(value: Any) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


@pytest.fixture(scope="module")
def codec() -> EncryptionCodec:
    return EncryptionCodec(KeyRing((CodecKey("ui-key", os.urandom(32)),)))


@pytest_asyncio.fixture(loop_scope="session")
async def base(codec: EncryptionCodec) -> AsyncIterator[str]:
    runner, port = await serve(codec, "127.0.0.1", 0, [WEB_UI], max_body_bytes=MAX_BODY)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def post(url: str, body: str | bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers if headers is not None else JSON) as response:
            return response.status, dict(response.headers), await response.text()


async def test_encode_then_decode_round_trips_on_any_path_depth(base: str, codec: EncryptionCodec):
    status, headers, text = await post(f"{base}/default/encode", payloads_json(plain({"password": "hunter2"}), plain(7)))
    assert status == 200 and headers["Content-Type"].startswith("application/json"), text
    sealed = json_format.Parse(text, Payloads()).payloads
    assert len(sealed) == 2 and "hunter2" not in text
    assert all(p.metadata["encoding"] == ENCODING and p.metadata[KEY_ID_METADATA] == b"ui-key" for p in sealed)
    assert await codec.decode(sealed) == [plain({"password": "hunter2"}), plain(7)]  # what the workers read

    status, headers, text = await post(f"{base}/a/b/decode", payloads_json(*sealed), {**JSON, "Origin": WEB_UI, "X-Namespace": "a"})
    assert status == 200, text
    assert headers["Access-Control-Allow-Origin"] == WEB_UI and headers["Vary"] == "Origin"
    assert list(json_format.Parse(text, Payloads()).payloads) == [plain({"password": "hunter2"}), plain(7)]
    # A payload that was never encrypted comes back as it is (a run from before the key was set).
    status, _, text = await post(f"{base}/decode", payloads_json(plain("old")))
    assert status == 200 and list(json_format.Parse(text, Payloads()).payloads) == [plain("old")]


async def test_the_web_ui_origin_may_call_and_no_other(base: str, codec: EncryptionCodec):
    preflight = {"Origin": WEB_UI, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-namespace"}
    async with aiohttp.ClientSession() as session:
        async with session.options(f"{base}/default/decode", headers=preflight) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == WEB_UI
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            allowed = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"content-type", "x-namespace", "authorization"} <= allowed
        async with session.options(f"{base}/decode", headers={**preflight, "Origin": "http://evil.example"}) as response:
            assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    sealed = codec.encrypt(plain("secret"))
    status, headers, text = await post(f"{base}/decode", payloads_json(sealed), {**JSON, "Origin": "http://evil.example"})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers and "secret" not in text
    assert "origin 'http://evil.example' is not allowed" in json.loads(text)["error"]


@pytest.mark.parametrize("path, body, headers, status, reason", [
    ("/decode", "{not json", JSON, 400, 'expected {"payloads": [...]}'),
    ("/decode", '{"payload": []}', JSON, 400, 'expected {"payloads": [...]}'),
    ("/decode", '{"payloads": [{"data": 5}]}', JSON, 400, 'expected {"payloads": [...]}'),
    ("/decode", b"\xff\xfe", JSON, 400, "not UTF-8"),
    ("/decode", "{}", {"Content-Type": "text/plain"}, 415, "expected application/json"),
    ("/decrypt", "{}", JSON, 404, "POST to …/encode or …/decode"),
    ("/decode", "x" * (MAX_BODY + 1), JSON, 413, f"over {MAX_BODY} bytes"),
    ("/encode", json.dumps({"payloads": [{}] * (MAX_PAYLOADS + 1)}), JSON, 400, f"at most {MAX_PAYLOADS}"),
])
async def test_a_bad_request_is_refused_with_a_reason(base: str, path: str, body: Any, headers: dict[str, str], status: int, reason: str):
    got, _, text = await post(base + path, body, headers)
    assert got == status, text
    assert reason in json.loads(text)["error"]


async def test_a_payload_it_cannot_decrypt_is_a_400_naming_the_key(base: str):
    foreign = EncryptionCodec(KeyRing((CodecKey("other-key", os.urandom(32)),))).encrypt(plain("x"))
    status, _, text = await post(f"{base}/decode", payloads_json(foreign))
    assert status == 400 and "key id 'other-key'" in json.loads(text)["error"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/decode") as response:
            assert response.status == 405 and response.headers["Allow"] == "POST, OPTIONS"
