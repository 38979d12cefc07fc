"""The `http` runnable: one request with httpx (async), its response as the task's outputs.

It heartbeats while it waits, so a cancellation reaches it within about a second and aborts the
request (the connection is closed). Every failure is final (non-retryable): the task's own `retry`
is its only retry budget (SPEC §3.3); only a lost worker is re-dispatched by Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any, AsyncIterator

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.api import HTTP_ACTIVITY, HttpRequest, HttpResult
from activities.extracting import apply_extractors
from activities.storage import TaskStorage
from temporal_flows.expressions.extractors import excerpt

HEARTBEAT_EVERY = 1.0
"""Seconds between heartbeats (the SDK learns of a cancellation on a heartbeat's answer)."""
BODY_LIMIT_BYTES = 1024 * 1024
"""Largest response body kept (1 MiB): a bigger one fails the task (`ResponseTooLarge`) rather than
nearing Temporal's payload limit; `options.maxContentLength` may only lower it."""
EXCERPT_CHARS = 500


@activity.defn(name=HTTP_ACTIVITY)
async def run_http(request: HttpRequest) -> HttpResult:
    """Send the request; its response, or a non-retryable ApplicationError saying why not."""
    async with _heartbeating():
        try:
            return await asyncio.wait_for(_exchange(request), timeout=request.timeout_s)
        except asyncio.TimeoutError:  # before OSError: TimeoutError is an OSError since 3.11
            raise ApplicationError(f"Task timed out after {request.timeout_s:g}s waiting for {request.uri}",
                                   type="Timeout", non_retryable=True) from None


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()


async def _exchange(request: HttpRequest) -> HttpResult:
    timeout = httpx.Timeout(None, connect=request.connect_timeout_s, read=request.read_timeout_s)
    limit = min(BODY_LIMIT_BYTES, request.max_body_bytes or BODY_LIMIT_BYTES)
    try:
        async with httpx.AsyncClient(follow_redirects=request.follow_redirects, timeout=timeout) as client:
            async with client.stream(request.method, request.uri, auth=_auth(request), **_content(request)) as response:
                raw = await _read_bounded(response, limit, request)
                result = _result(response, raw)
    except httpx.InvalidURL as error:
        raise ApplicationError(f"Invalid URL {request.uri!r}: {error}", type="InvalidUrl", non_retryable=True) from None
    except httpx.UnsupportedProtocol as error:
        raise ApplicationError(f"Invalid URL {request.uri!r}: {error}", type="InvalidUrl", non_retryable=True) from None
    except httpx.TimeoutException as error:
        raise ApplicationError(f"Timed out talking to {_host(request.uri)}: {type(error).__name__}",
                               type="Timeout", non_retryable=True) from None
    except (httpx.TransportError, OSError) as error:
        raise ApplicationError(f"Cannot reach {_host(request.uri)} ({request.method} {request.uri}): "
                               f"{error or type(error).__name__}", type="ConnectionError", non_retryable=True) from None
    if not _allowed(result.status, request.allowed_status):
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        raise ApplicationError(
            f"HTTP {result.status} {response.reason_phrase} from {request.method} {request.uri}: {excerpt(text, EXCERPT_CHARS)}",
            dataclasses.asdict(result), type="HttpStatus", non_retryable=True)
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    parsed = result.body if _is_json(response) and not isinstance(result.body, str) else None
    extracted = apply_extractors(request.output, text, "response body", parsed)
    storage = TaskStorage(request.run_id, request.task_run_id)  # a body over the threshold travels as a reference
    return dataclasses.replace(result, body=storage.shrink({"body": result.body})["body"],
                               extracted=storage.shrink(extracted, prefix="extracted-"))


def _content(request: HttpRequest) -> dict[str, Any]:
    """httpx's arguments for the request's headers and body."""
    headers = dict(request.headers)
    if request.content_type and not any(name.lower() == "content-type" for name in headers):
        if not (request.form is not None and "multipart" in request.content_type):  # httpx sets the boundary
            headers["Content-Type"] = request.content_type
    content: dict[str, Any] = {"headers": headers}
    if request.send_json:
        content["json"] = request.json_body
    elif request.form is not None and request.content_type and "multipart" in request.content_type:
        content["files"] = {name: (None, value) for name, value in request.form.items()}
    elif request.form is not None:
        content["data"] = request.form
    elif request.body is not None:
        content["content"] = request.body.encode()
    return content


def _auth(request: HttpRequest) -> Any:
    if not request.auth:
        return None
    if request.auth.get("type") == "bearer":
        token = request.auth.get("token", "")
        return _Bearer(token)
    return httpx.BasicAuth(request.auth.get("username", ""), request.auth.get("password", ""))


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


async def _read_bounded(response: httpx.Response, limit: int, request: HttpRequest) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ApplicationError(
                f"Response body of {request.method} {request.uri} exceeds {limit // 1024} KiB (HTTP {response.status_code})",
                type="ResponseTooLarge", non_retryable=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _result(response: httpx.Response, raw: bytes) -> HttpResult:
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    body: Any = text
    if _is_json(response) and text.strip():
        with contextlib.suppress(ValueError):
            body = json.loads(text)
    return HttpResult(status=response.status_code, uri=str(response.url), headers=headers, body=body)


def _is_json(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _allowed(status: int, ranges: list[list[int]]) -> bool:
    return any(low <= status <= high for low, high in ranges)


def _host(uri: str) -> str:
    try:
        url = httpx.URL(uri)
    except Exception:  # noqa: BLE001 - the message only needs a best effort
        return uri
    return f"{url.host}:{url.port}" if url.port else str(url.host)
