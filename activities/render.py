"""Rendering on a worker: templates that read stored values (references), which the workflow cannot
read, or that run jq, which has no bound the workflow could count, render here with the workflow's
own environment (`temporal_flows.expressions.templates`, with a worker's sizes), references read
from the run's storage. A result too big for the history is stored again and returned as a
reference; a reference that cannot be read fails the task naming its file. Data merely shaped like
a reference (not signed for this run, see `activities.storage.keys`) is rendered as the plain data it is.

A render runs in a child process (`RenderProcesses`; `python -m activities.render` is the child):
a jq program or a template can run past any bound a render counts, so the worker kills the child
past a time limit (the task fails with `Timeout`) and caps its memory; its other activities and
workflows never wait on it. Children are kept for the next render (starting one costs an
interpreter and the imports) and end on their own when idle, or when the worker's end closes their
input. One child renders one request at a time; requests and replies are frames of JSON (a 4-byte
length, then the text) on its stdin and stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import select
import struct
import sys
import weakref
from dataclasses import asdict, dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.api import RENDER_ACTIVITY, RenderRequest
from activities.storage import StoredValueError, TaskStorage, configure, root_run_of, read_value, settings, stored
from activities.storage.keys import child_environment
from temporal_flows.expressions.library import RENDERING_RUN
from temporal_flows.expressions.sandbox import PrintedAsText
from temporal_flows.expressions.templates import ExpressionError, reading_environment, render_string

RENDER_TIME_LIMIT_S = float(os.environ.get("TFLOW_RENDER_TIME_LIMIT", "5"))
"""Seconds one render request may take in its child process before the child is killed."""
RENDER_MEMORY_BYTES = int(os.environ.get("TFLOW_RENDER_MEMORY", str(2 << 30)))
"""Address space of a child process (its memory, roughly): past it an allocation fails."""
IDLE_EXIT_S = 60.0
"""A child with no request for this long ends."""
KEPT_IDLE = 2
"""Children kept for later requests (more are started while several renders run at once)."""
START_TIMEOUT_S = 60.0
_FRAME = struct.Struct(">I")


class RenderFailed(Exception):
    """The child could not render: `error_type` is the task's error type (`Timeout`, ...)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class StorageConfig:
    """The parent's storage settings, for a child that reads and stores values the same way."""

    root: str
    threshold: int


class _Child:
    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    async def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(message).encode()
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(_FRAME.pack(len(data)) + data)
        await self.process.stdin.drain()
        return await _read_frame(self.process.stdout)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def _read_frame(stream: asyncio.StreamReader) -> dict[str, Any]:
    header = await stream.readexactly(_FRAME.size)
    return json.loads(await stream.readexactly(_FRAME.unpack(header)[0]))


class RenderProcesses:
    """Child processes of one event loop (the worker's), each rendering one request at a time."""

    def __init__(self, time_limit_s: float = RENDER_TIME_LIMIT_S, memory_bytes: int = RENDER_MEMORY_BYTES):
        self.time_limit_s = time_limit_s
        self.memory_bytes = memory_bytes
        self.idle: list[_Child] = []

    async def render(self, request: dict[str, Any], storage: StorageConfig | None, run: str = "") -> dict[str, Any]:
        """The rendered templates (`run`: the Temporal run id its `secret()` placeholders are tagged with);
        raises `RenderFailed` (the child's error, or it ran out of time or died)."""
        child = await self._child()
        try:
            message = {"request": request, "storage": storage and asdict(storage), "run": run}
            reply = await asyncio.wait_for(child.exchange(message), self.time_limit_s)
        except asyncio.TimeoutError:
            child.kill()
            await child.process.wait()
            raise RenderFailed("Timeout", f"rendering took more than {self.time_limit_s:g} s (the process rendering it was killed)") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            child.kill()
            code = await child.process.wait()
            raise RenderFailed("TemplateBudgetExceeded", f"the process rendering it ended ({_ending(code)}); "
                               f"it may have used more than its {self.memory_bytes >> 20} MiB of memory") from None
        except BaseException:  # cancelled: the child may be mid-render
            child.kill()
            raise
        self._keep(child)
        if "error" in reply:
            raise RenderFailed(reply["type"], reply["error"])
        return reply["rendered"]

    async def _child(self) -> _Child:
        while self.idle:
            child = self.idle.pop()
            if child.process.returncode is None:
                return child
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "activities.render", str(self.memory_bytes), str(IDLE_EXIT_S),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            limit=1 << 30, env=child_environment(),  # the storage key, even once taken out of os.environ
        )
        child = _Child(process)
        try:
            assert process.stdout is not None
            await asyncio.wait_for(_read_frame(process.stdout), START_TIMEOUT_S)  # ready: imports done
        except BaseException:
            child.kill()
            raise
        return child

    def _keep(self, child: _Child) -> None:
        if len(self.idle) < KEPT_IDLE:
            self.idle.append(child)
        else:
            child.process.stdin.close()  # type: ignore[union-attr] - it ends at the end of its input


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RenderProcesses] = weakref.WeakKeyDictionary()


def render_processes() -> RenderProcesses:
    """The running event loop's children (a process's processes are tied to the loop that started them)."""
    loop = asyncio.get_running_loop()
    if loop not in _by_loop:
        _by_loop[loop] = RenderProcesses()
    return _by_loop[loop]


def _ending(code: int | None) -> str:
    return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"


def read_frame(source: Any) -> dict[str, Any] | None:
    """The next frame on a blocking binary stream, or None at its end."""
    header = source.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    return json.loads(source.read(_FRAME.unpack(header)[0]))


def write_frame(sink: Any, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    sink.write(_FRAME.pack(len(data)) + data)
    sink.flush()


class _FixedNow(PrintedAsText):
    """`now()` as the workflow saw it when it asked for the render (printed bare, the same text)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self) -> str:
        return self.text

    __str__ = __repr__ = __call__


def render_templates(request: RenderRequest) -> dict[str, Any]:
    """`{template: rendered text, or a reference when it is too big}`; raises ExpressionError."""
    cache: dict[str, Any] = {}
    root_run_id = root_run_of(request)

    def read(reference: dict[str, Any]) -> Any:
        if not stored(reference, root_run_id):
            return reference  # forged, or another run's: never read
        path = str(reference.get("$tflowRef"))
        if path not in cache:
            cache[path] = read_value(reference, root_run_id)
        return cache[path]

    env = reading_environment(request.pebble, read)
    context = dict(request.context)
    context["now"] = _FixedNow(str(context.get("now", "")))
    if request.pebble:
        context["flows"] = context.get("outputs", {})
    rendered = {}
    for template in request.templates:
        rendered[template] = render_string(template, context, request.pebble, env=env)
    return TaskStorage.of(request).shrink(rendered, prefix="rendered-") if _storage() else rendered


@activity.defn(name=RENDER_ACTIVITY)
async def render_stored(request: RenderRequest) -> dict[str, Any]:
    """Render in a child process, killed past its time limit (`RenderProcesses`)."""
    storage = _storage()
    try:
        return await render_processes().render(asdict(request), storage and StorageConfig(str(storage.root), storage.threshold),
                                               activity.info().workflow_run_id)
    except RenderFailed as failed:
        message = str(failed)
        if not message.startswith("cannot render"):  # killed or died: name what it was rendering
            message = f"cannot render {', '.join(f'`{template.strip()}`' for template in request.templates)}: {message}"
        raise ApplicationError(message, type=failed.error_type, non_retryable=True) from None


def _storage() -> Any:
    """This worker's storage settings, or None when it has none (nothing stored can be read then)."""
    try:
        return settings()
    except ApplicationError:
        return None


def serve(memory_bytes: int, idle_exit_s: float) -> None:
    """The child process (`RenderProcesses`): render requests from stdin until it ends or
    stays idle too long, its memory capped."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    write_frame(sink, {"ready": True})
    while select.select([source], [], [], idle_exit_s)[0]:
        message = read_frame(source)
        if message is None:
            return
        if message.get("storage"):
            configure(message["storage"]["root"], message["storage"]["threshold"])
        RENDERING_RUN.set(message.get("run") or "")  # secret() placeholders tagged for the run, as in the workflow
        try:
            reply: dict[str, Any] = {"rendered": render_templates(RenderRequest(**message["request"]))}
        except ExpressionError as error:
            unreadable = isinstance(error.__context__, StoredValueError)
            reply = {"error": str(error), "type": "StoredValueError" if unreadable else error.error_type}
        except MemoryError:
            reply = {"error": f"out of memory (more than {memory_bytes >> 20} MiB)", "type": "TemplateBudgetExceeded"}
        except Exception as error:  # noqa: BLE001 - reported to the task, never a dead child
            reply = {"error": f"{type(error).__name__}: {error}", "type": getattr(error, "type", None) or "ExpressionError"}
        write_frame(sink, reply)


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]))
