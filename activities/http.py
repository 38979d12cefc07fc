"""The `http` runnable: one request with httpx (async), its response as the task's outputs.

It heartbeats while it waits, so a cancellation reaches it within about a second and aborts the
request (the connection is closed). Every failure is final (non-retryable): the task's own `retry`
is its only retry budget (SPEC §3.3); only a lost worker is re-dispatched by Temporal.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, TypeVar

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.api import HTTP_ACTIVITY, HttpCall, HttpRequest, HttpResult
from activities.bounds import RESULT_LIMIT_BYTES, check_result_size, json_loads, result_size
from activities.extracting import apply_extractors
from activities.heartbeating import heartbeating
from activities.secrets.task import TaskSecrets
from activities.storage import TaskStorage
from activities.wire import to_wire
from temporal_flows.expressions.extractors import excerpt

HEARTBEAT_EVERY = 1.0
"""Seconds between heartbeats (the SDK learns of a cancellation on a heartbeat's answer)."""
BODY_LIMIT_BYTES = 1024 * 1024
"""Largest response body kept (1 MiB): a bigger one fails the task (`ResponseTooLarge`) rather than
nearing Temporal's payload limit; `options.maxContentLength` may only lower it."""
EXCERPT_CHARS = 500


@activity.defn(name=HTTP_ACTIVITY)
async def run_http(request: HttpRequest) -> HttpResult:
    """Send the request; its response, or a non-retryable ApplicationError saying why not: any
    other error (a storage write failing...) ends the task once too, as `<Type>: <message>`, since
    a retry by Temporal would send the request again; only a lost worker is re-dispatched.
    Its secrets are resolved just before sending and masked in the result and errors, whose URLs
    lose their query strings (`activities.secrets`)."""
    secrets = TaskSecrets.of(request)
    async with heartbeating(HEARTBEAT_EVERY):
        try:
            resolved = resolved_request(request, secrets)
            return secrets.mask_result(await asyncio.wait_for(_exchange(resolved, secrets), timeout=request.timeout_s))
        except asyncio.TimeoutError:  # before OSError: TimeoutError is an OSError since 3.11
            raise secrets.masked_error(ApplicationError(
                f"Task timed out after {request.timeout_s:g}s waiting for {request.uri}",
                type="Timeout", non_retryable=True)) from None
        except Exception as error:  # noqa: BLE001 - asyncio.CancelledError is a BaseException: it propagates
            raise secrets.final_error(error) from None


CallT = TypeVar("CallT", bound=HttpCall)


def resolved_request(request: CallT, secrets: TaskSecrets) -> CallT:
    """`request` with its secrets' placeholders replaced (URL, headers, body, form, auth)."""
    return dataclasses.replace(
        request,
        uri=secrets.resolve(request.uri),
        headers=secrets.resolve_data(request.headers),
        body=secrets.resolve_data(request.body),
        json_body=secrets.resolve_data(request.json_body),
        form=secrets.resolve_data(request.form),
        auth=secrets.resolve_data(request.auth),
    )


async def _exchange(request: HttpRequest, secrets: TaskSecrets) -> HttpResult:
    timeout = httpx.Timeout(None, connect=request.connect_timeout_s, read=request.read_timeout_s)
    limit = min(BODY_LIMIT_BYTES, request.max_body_bytes or BODY_LIMIT_BYTES)
    try:
        async with httpx.AsyncClient(follow_redirects=request.follow_redirects, timeout=timeout) as client:
            async with client.stream(request.method, request.uri, auth=request_auth(request), **request_content(request)) as response:
                raw = await _read_bounded(response, limit, request)
    except httpx.InvalidURL as error:
        raise ApplicationError(f"Invalid URL {request.uri!r}: {error}", type="InvalidUrl", non_retryable=True) from None
    except httpx.UnsupportedProtocol as error:
        raise ApplicationError(f"Invalid URL {request.uri!r}: {error}", type="InvalidUrl", non_retryable=True) from None
    except httpx.TimeoutException as error:
        raise ApplicationError(f"Timed out talking to {host_of(request.uri)}: {type(error).__name__}",
                               type="Timeout", non_retryable=True) from None
    except (httpx.TransportError, OSError) as error:
        raise ApplicationError(f"Cannot reach {host_of(request.uri)} ({request.method} {request.uri}): "
                               f"{error or type(error).__name__}", type="ConnectionError", non_retryable=True) from None
    text = secrets.mask(raw.decode(response.encoding or "utf-8", errors="replace"))  # before it is parsed or stored
    allowed = _allowed(response.status_code, request.allowed_status)
    result = _result(response, text, f"The response body of {request.method} {request.uri}", strict=allowed)
    if not allowed:
        raise ApplicationError(
            f"HTTP {result.status} {response.reason_phrase} from {request.method} {request.uri}: {excerpt(text, EXCERPT_CHARS)}",
            _failure_details(result), type="HttpStatus", non_retryable=True)
    parsed = result.body if _is_json(response) and not isinstance(result.body, str) else None
    extracted = apply_extractors(request.output, text, "response body", parsed)
    storage = TaskStorage.of(request)  # a body over the threshold travels as a reference
    result = dataclasses.replace(result, body=(await storage.shrink_async({"body": result.body}))["body"],
                                 extracted=await storage.shrink_async(extracted, prefix="extracted-"))
    check_result_size(to_wire(result), f"The result of {request.method} {request.uri}")
    return result


def _failure_details(result: HttpResult) -> dict[str, Any]:
    """A failed response as its failure's details; a body too big for them is left out (the
    message carries an excerpt)."""
    details = to_wire(result)
    if result_size(details) > RESULT_LIMIT_BYTES:
        details["body"] = "(the body is left out of the failure's details: too large)"
    return details


def request_content(request: HttpCall) -> dict[str, Any]:
    """httpx's arguments for the request's headers and body (an `http` or a `download` task)."""
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


def request_auth(request: HttpCall) -> Any:
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


def _result(response: httpx.Response, text: str, what: str, strict: bool) -> HttpResult:
    """The response with its body parsed when JSON: within the bounds (`activities.bounds`), else
    the task fails (OutputTooDeep, ResultTooLarge) when `strict`, or the body stays text."""
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    body: Any = text
    if _is_json(response) and text.strip():
        try:
            body = json_loads(text, what)
        except ValueError:
            pass
        except ApplicationError:
            if strict:
                raise
    return HttpResult(status=response.status_code, uri=str(response.url), headers=headers, body=body)


def _is_json(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _allowed(status: int, ranges: list[list[int]]) -> bool:
    return any(low <= status <= high for low, high in ranges)


def host_of(uri: str) -> str:
    try:
        url = httpx.URL(uri)
    except Exception:  # noqa: BLE001 - the message only needs a best effort
        return uri
    return f"{url.host}:{url.port}" if url.port else str(url.host)
