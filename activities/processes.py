"""Subprocesses that die with their worker and can be killed as a whole process group.

:func:`run_supervised` starts a command under a tiny `/bin/sh` supervisor that leads its own process
group, streams stdout/stderr line by line, heartbeats while it waits, and on cancellation stops the
whole group (SIGTERM, a grace period, then SIGKILL). If the worker itself is SIGKILLed, Linux sends
the supervisor SIGHUP (PR_SET_PDEATHSIG) and the supervisor SIGKILLs its group, grandchildren included.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from temporal_flows.metadata import CANCEL_GRACE

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
"""Resolved once in the parent: calling dlopen in a forked child of a threaded worker can deadlock."""

SUPERVISOR_SCRIPT = """\
trap 'kill -KILL 0' HUP
trap ':' TERM
"$@" &
child=$!
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || exit "$status"
done
"""
"""Group leader: SIGHUP (worker died) kills the whole group; SIGTERM is survived (a trapped signal
interrupts `wait`, so it loops) so that the leader exits exactly when the real command does."""

TAIL_LINES = 50
TAIL_CHARS = 16 * 1024
MAX_LINE_BYTES = 8 * 1024 * 1024
"""A longer line is split rather than buffered without bound."""
DRAIN_TIMEOUT = 2.0
"""After the group is killed, how long to wait for pipes held by processes that escaped it."""

LineCallback = Callable[[str], "bool | None"]
"""Called with each line (no trailing newline); a truthy return means "consumed, not a log line"
and keeps the line out of the tail."""


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """`preexec_fn`: ask Linux to send `sig` to this child when the spawning thread dies.

    Call it only from processes spawned by a long-lived thread (the event loop's): the signal
    fires when the *thread* that forked exits, not only the process.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _supervisor_preexec(parent_pid: int) -> Callable[[], None]:
    """`preexec_fn` for the supervisor; also closes the race where the worker died before prctl."""

    def preexec() -> None:
        die_with_parent(signal.SIGHUP)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


@dataclass(frozen=True)
class ProcessOutcome:
    """How a supervised process ended; a negative exit code means killed by that signal."""

    exit_code: int
    stdout_tail: str
    stderr_tail: str
    pid: int


class LineTail:
    """The last lines of a stream, bounded in count and characters, for error messages."""

    def __init__(self, max_lines: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> None:
        self._lines: deque[str] = deque()
        self._chars = 0
        self._max_lines = max_lines
        self._max_chars = max_chars

    def add(self, line: str) -> None:
        line = line[-self._max_chars :]
        self._lines.append(line)
        self._chars += len(line) + 1
        while len(self._lines) > self._max_lines or self._chars > self._max_chars + 1:
            self._chars -= len(self._lines.popleft()) + 1

    def text(self) -> str:
        return "\n".join(self._lines)


class _LineSplitter:
    """Turns pipe chunks into decoded lines for one stream; callback errors are kept, not raised,
    so a buggy callback can neither stall the pipe nor lose the process."""

    def __init__(self, on_line: LineCallback | None, errors: list[BaseException]) -> None:
        self.tail = LineTail()
        self._on_line = on_line
        self._errors = errors
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data
        start = 0
        while (end := self._buf.find(b"\n", start)) >= 0:
            self._emit(self._buf[start:end])
            start = end + 1
        del self._buf[:start]
        if len(self._buf) > MAX_LINE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._emit(self._buf)
            self._buf = bytearray()

    def _emit(self, raw: bytes | bytearray) -> None:
        line = bytes(raw).decode("utf-8", errors="replace").removesuffix("\r")
        consumed = False
        if self._on_line is not None:
            try:
                consumed = bool(self._on_line(line))
            except Exception as exc:  # noqa: BLE001 - re-raised once the process is done
                self._errors.append(exc)
        if not consumed:
            self.tail.add(line)


class _SupervisedProtocol(asyncio.SubprocessProtocol):
    """Splits output into lines and signals exit as soon as the leader exits: `Process.wait()`
    would also wait for every pipe to close, which a straggler holding stdout can delay forever."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_stdout: LineCallback | None,
                 on_stderr: LineCallback | None) -> None:
        self.errors: list[BaseException] = []
        self.streams = {1: _LineSplitter(on_stdout, self.errors), 2: _LineSplitter(on_stderr, self.errors)}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.streams[fd].feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.streams[fd].flush()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def resolve_executable(name: str, *, cwd: str | None, env: Mapping[str, str] | None) -> str:
    """Find `name` like exec would, so a missing program is an OSError here and not exit code 127
    from the supervisor."""
    if "/" in name:
        path = os.path.join(cwd or os.getcwd(), name)
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "No such file", name)
        if not os.access(path, os.X_OK):
            raise PermissionError(13, "Not executable", name)
        return path
    search_path = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(name, path=search_path)
    if found is None:
        raise FileNotFoundError(2, "Not found on PATH", name)
    return found


def kill_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; an already-empty group is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _spawn(protocol: _SupervisedProtocol, argv: Sequence[str], cwd: str | None,
                 env: Mapping[str, str] | None) -> asyncio.SubprocessTransport:
    """Start the supervisor from the event-loop thread; a cancel mid-spawn still kills the group."""
    loop = asyncio.get_running_loop()
    spawning = asyncio.ensure_future(loop.subprocess_exec(
        lambda: protocol, "/bin/sh", "-c", SUPERVISOR_SCRIPT, "tflow-supervisor", *argv,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=cwd, env=dict(env) if env is not None else None,
        start_new_session=True, preexec_fn=_supervisor_preexec(os.getpid())))
    try:
        transport, _ = await asyncio.shield(spawning)
    except asyncio.CancelledError:
        transport, _ = await spawning
        kill_group(transport.get_pid(), signal.SIGKILL)
        transport.close()
        raise
    return transport


async def _wait_exit(exited: asyncio.Future[None], heartbeat: Callable[[], None] | None,
                     every: float) -> None:
    """Wait for the leader to exit, heartbeating so cancellation reaches us and liveness is seen."""
    while True:
        if heartbeat is not None:
            heartbeat()
        done, _ = await asyncio.wait({exited}, timeout=every)
        if done:
            return


async def _terminate(pgid: int, exited: asyncio.Future[None], grace: float) -> None:
    """SIGTERM the group and give the command `grace` seconds to exit (SIGKILL follows anyway)."""
    kill_group(pgid, signal.SIGTERM)
    await asyncio.wait({exited}, timeout=grace)


async def _cleanup(pgid: int, transport: asyncio.SubprocessTransport,
                   protocol: _SupervisedProtocol) -> None:
    """Kill whatever is left in the group (background jobs the command left), then drain pipes."""
    kill_group(pgid, signal.SIGKILL)
    try:
        await asyncio.wait({protocol.exited, protocol.closed}, timeout=DRAIN_TIMEOUT,
                           return_when=asyncio.ALL_COMPLETED)
    finally:
        transport.close()
        for stream in protocol.streams.values():
            stream.flush()


async def run_supervised(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    on_stdout: LineCallback | None = None,
    on_stderr: LineCallback | None = None,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_every: float = 1.0,
    grace: float | None = None,
) -> ProcessOutcome:
    """Run `argv` in its own process group and wait for it; see the module docstring.

    Raises OSError if `argv[0]` cannot be executed. On cancellation the group gets SIGTERM, then
    SIGKILL after `grace` (default CANCEL_GRACE) and CancelledError is re-raised; on any other
    error the group is SIGKILLed. Leftover processes of the group are killed when the command exits.
    """
    if not argv:
        raise ValueError("run_supervised needs a command")
    argv = [resolve_executable(argv[0], cwd=cwd, env=env), *argv[1:]]
    if cwd is not None and not os.path.isdir(cwd):
        raise FileNotFoundError(2, "No such directory", cwd)
    loop = asyncio.get_running_loop()
    protocol = _SupervisedProtocol(loop, on_stdout, on_stderr)
    transport = await _spawn(protocol, argv, cwd, env)
    pgid = transport.get_pid()
    try:
        await _wait_exit(protocol.exited, heartbeat, heartbeat_every)
    except asyncio.CancelledError:
        await _terminate(pgid, protocol.exited, CANCEL_GRACE.total_seconds() if grace is None else grace)
        raise
    finally:
        await _cleanup(pgid, transport, protocol)
    if protocol.errors:
        raise protocol.errors[0]
    exit_code = transport.get_returncode()
    return ProcessOutcome(
        exit_code=exit_code if exit_code is not None else -signal.SIGKILL,
        stdout_tail=protocol.streams[1].tail.text(),
        stderr_tail=protocol.streams[2].tail.text(),
        pid=pgid,
    )
