"""The `download` runnable: one HTTP request whose response body is streamed, chunk by chunk, into a
temporary file and then into the run's storage, so a body of any size up to `max_size` costs a
chunk of memory, never the whole body. Its output `uri` is a stored file's reference, the same as
an `outputFiles` match's: later templates and `inputFiles` use it alike.

Heartbeats while it streams (a cancellation aborts it within about a second); every failure is
final (non-retryable), as for the `http` task: the task's own `retry` is its retry budget.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from email.message import Message
from pathlib import Path

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.api import DOWNLOAD_ACTIVITY, DownloadRequest, DownloadResult
from activities.heartbeating import heartbeating
from activities.http import HEARTBEAT_EVERY, host_of, request_auth, request_content, resolved_request
from activities.secrets.task import TaskSecrets, redact_urls
from activities.storage import TaskStorage

TOO_LARGE_ERROR = "ResponseTooLarge"
EMPTY_ERROR = "EmptyResponse"
STATUS_ERROR = "HttpStatus"
CHUNK_BYTES = 256 * 1024
"""Bytes read from the response at a time: the most of the body in memory at once (about)."""
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@activity.defn(name=DOWNLOAD_ACTIVITY)
async def run_download(request: DownloadRequest) -> DownloadResult:
    """Download the body into storage; the stored file's reference, or a non-retryable
    ApplicationError saying why not (secrets masked, URL queries redacted)."""
    secrets = TaskSecrets.of(request)
    async with heartbeating(HEARTBEAT_EVERY):
        try:
            resolved = resolved_request(request, secrets)
            with tempfile.TemporaryDirectory(prefix="tflow-download-") as folder:  # removed whatever happens
                result = await asyncio.wait_for(_download(resolved, Path(folder)), timeout=request.timeout_s)
            return secrets.mask_result(result)
        except asyncio.TimeoutError:  # before OSError: TimeoutError is an OSError since 3.11
            raise secrets.masked_error(ApplicationError(
                f"Task timed out after {request.timeout_s:g}s downloading {request.uri}",
                type="Timeout", non_retryable=True)) from None
        except Exception as error:  # noqa: BLE001 - asyncio.CancelledError is a BaseException: it propagates
            raise secrets.final_error(error) from None


async def _download(request: DownloadRequest, folder: Path) -> DownloadResult:
    timeout = httpx.Timeout(None, connect=request.connect_timeout_s, read=request.read_timeout_s)
    part = folder / "body"
    try:
        async with httpx.AsyncClient(follow_redirects=request.follow_redirects, timeout=timeout) as client:
            async with client.stream(request.method, request.uri, auth=request_auth(request), **request_content(request)) as response:
                headers = _headers(response)
                if not 200 <= response.status_code <= 299:
                    raise ApplicationError(
                        f"HTTP {response.status_code} {response.reason_phrase} from {request.method} {request.uri}",
                        {"code": response.status_code, "headers": headers}, type=STATUS_ERROR, non_retryable=True)
                length = await _stream_to(response, part, request)
                name = _file_name(response)
                final_url = redact_urls(str(response.url))
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
    if length == 0 and request.fail_on_empty:
        raise ApplicationError(f"Empty response body from {request.method} {request.uri} (failOnEmptyResponse)",
                               type=EMPTY_ERROR, non_retryable=True)
    reference = await asyncio.to_thread(TaskStorage.of(request).store_file, part, name)  # heartbeating goes on
    return DownloadResult(code=response.status_code, file=reference, length=length, uri=final_url, headers=headers)


async def _stream_to(response: httpx.Response, target: Path, request: DownloadRequest) -> int:
    """The body written to `target` chunk by chunk; its length. Past `max_size` (the announced
    Content-Length, or the bytes received) it fails at once: the caller removes the partial file."""
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > request.max_size:
        raise _too_large(request, f"announces {int(announced)} bytes")
    size = 0
    with target.open("wb") as sink:
        async for chunk in response.aiter_raw(CHUNK_BYTES) if _identity(response) else response.aiter_bytes(CHUNK_BYTES):
            size += len(chunk)
            if size > request.max_size:
                raise _too_large(request, f"sent more than {request.max_size} bytes")
            sink.write(chunk)
    return size


def _identity(response: httpx.Response) -> bool:
    """True when the body is not content-encoded: its raw bytes are the file (no decoding)."""
    return response.headers.get("content-encoding", "identity").strip().lower() in ("", "identity")


def _too_large(request: DownloadRequest, what: str) -> ApplicationError:
    return ApplicationError(f"The response of {request.method} {request.uri} {what}: over maxSize "
                            f"({request.max_size} bytes); nothing was kept", type=TOO_LARGE_ERROR, non_retryable=True)


def _headers(response: httpx.Response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _file_name(response: httpx.Response) -> str:
    """The stored file's name: Content-Disposition's filename, else the URL's last path segment,
    else `download`; one safe path component."""
    message = Message()
    message["content-disposition"] = response.headers.get("content-disposition", "")
    name = message.get_filename() or response.url.path.rstrip("/").rsplit("/", 1)[-1]
    safe = _UNSAFE_NAME.sub("_", Path(name).name)[:120]
    return safe if safe.strip("._") else "download"
