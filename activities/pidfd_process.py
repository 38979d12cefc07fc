"""A subprocess watched by the event loop through a pidfd and its pipes: no thread per child.

Before Python 3.12, asyncio's default child watcher starts (and joins) one thread per subprocess to
wait for it, and wraps each pipe in a transport; for a worker running many short tasks that is a
measurable share of its CPU. Linux (5.3+) gives a file descriptor that becomes readable when the
process exits, which the loop watches like the pipes (asyncio itself does so from 3.12 on).
:func:`spawn` is used where :func:`pidfd_supported`; :mod:`activities.processes` falls back to
`loop.subprocess_exec` elsewhere. No Python runs between fork and exec (plain `subprocess.Popen`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

READ_CHUNK = 64 * 1024
STREAMS = (1, 2)
"""stdout and stderr, numbered as the protocol expects (asyncio.SubprocessProtocol's fd numbers)."""


@functools.cache
def pidfd_supported() -> bool:
    """Can this process open a pidfd (Python 3.9+ on Linux 5.3+)?"""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


class PidfdTransport:
    """The part of asyncio.SubprocessTransport that run_supervised uses, fed by loop readers: each
    pipe's data and end to `protocol.pipe_data_received`/`pipe_connection_lost`, the exit (reaped at
    once) to `process_exited`, and `connection_lost` when both happened."""

    def __init__(self, loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes],
                 protocol: asyncio.SubprocessProtocol) -> None:
        self._loop = loop
        self._proc = proc
        self._protocol = protocol
        self._returncode: int | None = None
        self._lost = False
        self._pipes = {1: proc.stdout, 2: proc.stderr}
        self._pidfd = os.pidfd_open(proc.pid)
        loop.add_reader(self._pidfd, self._reap)
        for number, pipe in self._pipes.items():
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
            loop.add_reader(pipe.fileno(), self._read, number)

    def get_pid(self) -> int:
        return self._proc.pid

    def get_returncode(self) -> int | None:
        return self._returncode

    def close(self) -> None:
        """Stop reading the pipes. The exit is still awaited (and reaped) by the loop: the caller
        has killed the process group before closing."""
        for number in list(self._pipes):
            self._close_pipe(number)

    def _read(self, number: int) -> None:
        pipe = self._pipes.get(number)
        if pipe is None:
            return
        try:
            data = os.read(pipe.fileno(), READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._protocol.pipe_data_received(number, data)
        else:
            self._close_pipe(number)

    def _close_pipe(self, number: int) -> None:
        pipe = self._pipes.pop(number)
        self._loop.remove_reader(pipe.fileno())
        pipe.close()
        self._protocol.pipe_connection_lost(number, None)
        self._maybe_lost()

    def _reap(self) -> None:
        returncode = self._proc.poll()
        if returncode is None:
            return  # not exited yet (a spurious wake-up)
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._returncode = returncode
        self._protocol.process_exited()
        self._maybe_lost()

    def _maybe_lost(self) -> None:
        if not self._pipes and self._returncode is not None and not self._lost:
            self._lost = True
            self._protocol.connection_lost(None)


def spawn(protocol: asyncio.SubprocessProtocol, argv: Sequence[str], *, stdin: int, cwd: str | None,
          env: Mapping[str, str] | None) -> PidfdTransport:
    """Start `argv` in a new session with stdout/stderr piped to `protocol` (from the loop thread)."""
    loop = asyncio.get_running_loop()
    proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            env=env, start_new_session=True, bufsize=0)
    try:
        return PidfdTransport(loop, proc, protocol)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # the new session's group: nothing of it may run on
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        raise
