"""Temporal's remote codec protocol over HTTP (aiohttp), so the Temporal Web UI and CLI show the
payloads `client.codec` encrypted, decrypted, to the people who can reach this server.

`POST …/decode` and `POST …/encode` take and answer `{"payloads": [...]}`, the `Payloads` protobuf
in its JSON form; only the last path segment counts (`/default/decode` works as `/decode`). The Web
UI calls from the browser, so CORS lets its origins (and only them) in; a request from any other
page's origin is refused. Bodies are bounded (size and payload count); a bad one gets a 400 with a
reason, never a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from aiohttp import hdrs, web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from client.codec import CodecDecodeError, EncryptionCodec

MAX_BODY_BYTES = 32 * 1024 * 1024
"""A Temporal payload is at most 2 MiB by default; a Web UI batch of an event's payloads fits."""
MAX_PAYLOADS = 10_000
DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
"""The dev server's Web UI (`tflow server`, `temporal server start-dev`), as either host name."""
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"
PREFLIGHT_MAX_AGE = "600"
ACTIONS = ("encode", "decode")

log = logging.getLogger(__name__)


class BadBody(Exception):
    """The request body is not a `Payloads` JSON object within the bounds."""


@dataclass(frozen=True)
class CodecService:
    """What the HTTP handlers need: the codec and the browser origins allowed to call."""

    codec: EncryptionCodec
    origins: frozenset[str]

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        if origin is None or origin not in self.origins:
            return {}
        return {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: "POST, OPTIONS",
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
            hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true",
            hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE,
            hdrs.VARY: "Origin",
        }

    async def apply(self, action: str, body: bytes) -> bytes:
        """The body's payloads encoded or decoded, as the JSON answer."""
        payloads = parse_payloads(body)
        transform: Callable[[Sequence[Payload]], Awaitable[list[Payload]]] = (
            self.codec.encode if action == "encode" else self.codec.decode)
        answer = Payloads(payloads=await transform(list(payloads.payloads)))
        return json_format.MessageToJson(answer, indent=None).encode()


def parse_payloads(body: bytes) -> Payloads:
    """`{"payloads": [...]}` in protobuf JSON (base64 metadata values and data), bounded."""
    try:
        payloads = json_format.Parse(body.decode("utf-8"), Payloads())
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8 JSON") from None
    except json_format.ParseError as error:
        raise BadBody(f'expected {{"payloads": [...]}} (Temporal Payloads in protobuf JSON): {str(error)[:200]}') from None
    if len(payloads.payloads) > MAX_PAYLOADS:
        raise BadBody(f"{len(payloads.payloads)} payloads in one request; at most {MAX_PAYLOADS}")
    return payloads


def codec_app(codec: EncryptionCodec, origins: Sequence[str] = DEFAULT_ORIGINS,
              max_body_bytes: int = MAX_BODY_BYTES) -> web.Application:
    """The codec server's application: every path ending in /encode or /decode."""
    service = CodecService(codec, frozenset(origin.rstrip("/") for origin in origins))

    async def handle(request: web.Request) -> web.Response:
        action = request.path.rstrip("/").rsplit("/", 1)[-1]
        origin = request.headers.get(hdrs.ORIGIN)
        headers = service.cors_headers(origin)
        response = await _answer(service, request, action, origin, headers, max_body_bytes)
        response.headers.update(headers)
        log.info("%s %s -> %d", request.method, request.path, response.status)
        return response

    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_route("*", "/{path:.*}", handle)
    return app


async def _answer(service: CodecService, request: web.Request, action: str, origin: str | None,
                  headers: dict[str, str], max_body_bytes: int) -> web.Response:
    if action not in ACTIONS:
        return _refusal(404, f"no such endpoint {request.path!r}: POST to …/encode or …/decode")
    if origin is not None and not headers:
        return _refusal(403, f"origin {origin[:200]!r} is not allowed (tflow codec-server --cors-origin)")
    if request.method == hdrs.METH_OPTIONS:
        return web.Response(status=204)
    if request.method != hdrs.METH_POST:
        return _refusal(405, f"{request.method} {request.path}: only POST (and CORS OPTIONS)", {hdrs.ALLOW: "POST, OPTIONS"})
    if request.content_type != "application/json":
        return _refusal(415, f"Content-Type {request.content_type!r}: expected application/json")
    try:
        body = await request.read()
        return web.Response(body=await service.apply(action, body), content_type="application/json")
    except web.HTTPRequestEntityTooLarge:
        return _refusal(413, f"the body is over {max_body_bytes} bytes")
    except (BadBody, CodecDecodeError) as error:
        return _refusal(400, str(error))


def _refusal(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


async def serve(codec: EncryptionCodec, host: str, port: int, origins: Sequence[str] = DEFAULT_ORIGINS,
                max_body_bytes: int = MAX_BODY_BYTES) -> tuple[web.AppRunner, int]:
    """Start the codec server (port 0: a free one); returns its runner (to `cleanup()`) and its port."""
    runner = web.AppRunner(codec_app(codec, origins, max_body_bytes), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, sorted({address[1] for address in runner.addresses})[0]
