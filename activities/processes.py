"""Subprocesses that die with their worker and can be killed as a whole process group.

:func:`run_supervised` starts a command under a tiny `/bin/sh` supervisor that leads its own process
group, streams stdout/stderr line by line, heartbeats while it waits, and on cancellation stops the
whole group (SIGTERM, a grace period, then SIGKILL). If the worker itself dies (even by SIGKILL), the
supervisor's lifeline — a pipe whose only write end the worker holds — reads end-of-file and the
supervisor's watcher SIGKILLs the group, grandchildren included. Processes that leave the group
(`setsid`, a double fork) are still the task's: its scope (activities.containment, a cgroup or a
token) is killed with it, at its end and at the worker's death alike.

No Python code runs between fork and exec (no `preexec_fn`): in a multi-threaded worker a forked
child that runs Python can hang forever on a lock another thread held at fork time. The lifeline
is plain stdin, the new session is set by CPython's C code, so CPython can also use the much cheaper
vfork for the spawn, and a task costs two execs (the supervisor, the command) rather than three:
no `setpriv` is needed for tasks (the dev server still uses it, see die_with_parent_command). A
`/bin/sh -c` script (`inline_sh`) costs one: the supervising shell forks a subshell that runs it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from activities.containment import SWEEP_TIMEOUT, TaskScope, task_scope
from activities.pidfd_process import PidfdTransport, pidfd_supported
from activities.pidfd_process import spawn as spawn_with_pidfd
from temporal_flows.metadata import CANCEL_GRACE

log = logging.getLogger(__name__)

SUPERVISOR_SCRIPT = """\
[ "$PPID" = "$1" ] || kill -KILL 0
case $2 in /*) { echo 0 >"$2"; } 2>/dev/null || echo "tflow: cannot join the task's cgroup ${2%/*}" >&2;; esac
shift
exec 3<&0 </dev/null
if [ "$2" = "tflow-inline-sh" ]; then
  ( exec 3<&-; eval "set --; $3" ) &
  set -- "$1" tflow-inline-pid "$!"
fi
{ trap '' TERM; read _ <&3; read me _ </proc/self/stat
  case $1 in
  /*) n=0; while [ $n -lt 100 ]; do n=$((n+1)); left=
       while read p; do [ "$p" = "$me" ] || { left=1; kill -KILL "$p"; }; done <"${1%/*}/cgroup.threads"
       [ -n "$left" ] || break
     done;;
  -) ;;
  *) for f in $(grep -lzxF "TFLOW_TASK_TOKEN=$1" /proc/[0-9]*/environ); do
       p=${f#/proc/}; p=${p%/environ}; [ "$p" = "$me" ] || kill -KILL "$p"
     done;;
  esac
  kill -KILL 0; } >/dev/null 2>&1 &
watcher=$!
exec 3<&-
shift
trap ':' TERM
if [ "$1" = "tflow-inline-pid" ]; then
  child=$2
else
  "$@" &
  child=$!
fi
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
kill -KILL "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
exit "$status"
"""
"""Group leader, run as `sh -c SCRIPT tflow-supervisor <worker pid> <scope> argv...` with the
worker's lifeline (see lifeline_fd) as stdin. If the worker already died (the parent is no longer
the worker pid) the group is killed at once. `<scope>` (see activities.containment) is a cgroup's
`cgroup.threads` (or `cgroup.procs`) file, which the supervisor writes itself to before it starts
anything, a token, or `-`. A forked watcher (no exec) blocks reading the lifeline: it gets
end-of-file only when the worker is gone, and then kills every thread in the task's cgroup (until
none is left), or every process carrying the token (one grep, only then), and the whole group;
it ignores SIGTERM so a cancellation's grace period cannot disarm it. The command runs with
/dev/null as stdin and without the lifeline. SIGTERM is survived by the leader (a trapped signal
interrupts `wait`, so it loops) so that it exits exactly when the real command does, with its
status; the watcher is then reaped.
With `tflow-inline-sh SCRIPT` in place of argv, the supervisor's own /bin/sh runs SCRIPT in a forked
subshell (forked before the watcher and any assignment, so it inherits no job, no `$!`, no variable
of the supervisor's and no positional parameters) instead of exec'ing a second /bin/sh: one exec
less per task (see run_supervised's `inline_sh`)."""

INLINE_SH = ("/bin/sh", "-c")
"""The interpreter whose scripts the supervisor can run itself (it is that very shell)."""

EXEC_GUARD_SCRIPT = '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"'
"""Run as `sh -c SCRIPT tflow-guard <parent pid> argv...`: exec `argv` (same pid) unless the parent
already died before the death signal was set."""

TAIL_LINES = 50
TAIL_CHARS = 16 * 1024
MAX_LINE_BYTES = 8 * 1024 * 1024
"""A longer line is split rather than buffered without bound."""
DRAIN_TIMEOUT = 2.0
"""After the group is killed, how long to wait for pipes held by processes that escaped it."""

LineCallback = Callable[[str], "bool | None"]
"""Called with each line (no trailing newline); a truthy return means "consumed, not a log line"
and keeps the line out of the tail."""


SETPRIV_FALLBACKS = ("/usr/bin/setpriv", "/bin/setpriv")
"""Where to look for setpriv when it is not on PATH."""


@functools.cache
def setpriv_path() -> str | None:
    """util-linux setpriv if it can set a death signal, else None (and one warning, ever)."""
    setpriv = shutil.which("setpriv") or next(
        (path for path in SETPRIV_FALLBACKS if os.access(path, os.X_OK)), None)
    if setpriv is not None:
        try:  # util-linux before 2.33 has no --pdeathsig
            probe = subprocess.run([setpriv, "--pdeathsig", "HUP", "--", "/bin/sh", "-c", ":"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=10, check=False)
            if probe.returncode == 0:
                return setpriv
        except (OSError, subprocess.SubprocessError):
            pass
    log.warning("util-linux `setpriv --pdeathsig` is not available: child processes (tasks, the dev "
                "server) will NOT die if this process is killed with SIGKILL; install util-linux")
    return None


def pdeathsig_prefix(sig: str) -> tuple[str, ...]:
    """`setpriv --pdeathsig SIG --`, or () where setpriv cannot do that (see setpriv_path).

    `sig` is a signal name without SIG (`HUP`, `KILL`). The death signal fires when the *thread*
    that spawned the process exits, so spawn only from a long-lived thread (the event loop's).
    """
    setpriv = setpriv_path()
    return (setpriv, "--pdeathsig", sig, "--") if setpriv is not None else ()


def die_with_parent_command(argv: Sequence[str], sig: str = "KILL") -> list[str]:
    """`argv` wrapped so that the process gets `sig` when the spawning thread dies, with no
    `preexec_fn`; the wrapper execs `argv`, so the spawned pid is `argv`'s own. Exits 125 without
    running `argv` if this process died before the death signal was set."""
    prefix = pdeathsig_prefix(sig)
    if not prefix:
        return list(argv)
    return [*prefix, "/bin/sh", "-c", EXEC_GUARD_SCRIPT, "tflow-guard", str(os.getpid()), *argv]


_lifeline: tuple[int, int] | None = None
"""(read end, write end) of this process's lifeline pipe; nothing is ever written to it."""


def lifeline_fd() -> int:
    """The read end of a pipe whose write end only this process holds (both are close-on-exec, so
    no spawned program inherits them; a forked Python child closes the write end): a reader gets
    end-of-file exactly when this process is gone, however it died."""
    global _lifeline
    if _lifeline is None:
        _lifeline = os.pipe()
    return _lifeline[0]


def _forget_lifeline_in_forked_child() -> None:
    """A forked copy of the worker must not keep its tasks' lifeline open (it would outlive the worker)."""
    global _lifeline
    if _lifeline is not None:
        for fd in _lifeline:
            try:
                os.close(fd)
            except OSError:
                pass
        _lifeline = None


os.register_at_fork(after_in_child=_forget_lifeline_in_forked_child)


def supervisor_command(argv: Sequence[str], inline_sh: bool = False, scope: str = "-") -> list[str]:
    """The supervisor (see SUPERVISOR_SCRIPT) running `argv` in `scope` (TaskScope.supervisor_arg);
    give it lifeline_fd() as stdin. With `inline_sh` and `argv` = `/bin/sh -c SCRIPT`, the supervisor
    runs SCRIPT in a subshell of its own (`$0` stays `/bin/sh`, so messages read as from `sh -c`)."""
    if inline_sh and len(argv) == 3 and tuple(argv[:2]) == INLINE_SH:
        return ["/bin/sh", "-c", SUPERVISOR_SCRIPT, "/bin/sh", str(os.getpid()), scope, "tflow-inline-sh", argv[2]]
    return ["/bin/sh", "-c", SUPERVISOR_SCRIPT, "tflow-supervisor", str(os.getpid()), scope, *argv]


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

    def __init__(self, on_line: LineCallback | None, errors: list[BaseException],
                 mask: Callable[[str], str] | None = None) -> None:
        self.tail = LineTail()
        self._on_line = on_line
        self._mask = mask
        self._errors = errors
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        if b"\n" not in data:
            self._buf += data
            if len(self._buf) > MAX_LINE_BYTES:
                self.flush()
            return
        lines = data.split(b"\n")
        if self._buf:
            self._buf += lines[0]
            lines[0] = bytes(self._buf)
            self._buf.clear()
        rest = lines.pop()
        for raw in lines:
            self._emit(raw)
        if rest:
            self._buf += rest
            if len(self._buf) > MAX_LINE_BYTES:
                self.flush()

    def flush(self) -> None:
        if self._buf:
            self._emit(self._buf)
            self._buf = bytearray()

    def _emit(self, raw: bytes | bytearray) -> None:
        line = raw.decode("utf-8", errors="replace").removesuffix("\r")
        if self._mask is not None:
            line = self._mask(line)
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
                 on_stderr: LineCallback | None, mask: Callable[[str], str] | None = None) -> None:
        self.errors: list[BaseException] = []
        self.streams = {1: _LineSplitter(on_stdout, self.errors, mask), 2: _LineSplitter(on_stderr, self.errors, mask)}
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
                 env: Mapping[str, str] | None, inline_sh: bool, scope: str) -> asyncio.SubprocessTransport | PidfdTransport:
    """Start the supervisor from the event-loop thread, watched through a pidfd where the system
    has them (no await: nothing to cancel mid-spawn), else by asyncio's child watcher (a cancel
    mid-spawn still kills the group)."""
    if pidfd_supported():
        return spawn_with_pidfd(protocol, supervisor_command(argv, inline_sh, scope), stdin=lifeline_fd(), cwd=cwd, env=env)
    loop = asyncio.get_running_loop()
    spawning = asyncio.ensure_future(loop.subprocess_exec(
        lambda: protocol, *supervisor_command(argv, inline_sh, scope),
        stdin=lifeline_fd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=cwd, env=env, start_new_session=True))
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
    """Wait for the leader to exit, heartbeating every `every` seconds (the first one only after
    `every`: a short task sends none) so cancellation reaches us and liveness is seen."""
    if heartbeat is None:
        await asyncio.wait({exited})
        return
    while not (await asyncio.wait({exited}, timeout=every))[0]:
        heartbeat()


async def _terminate(pgid: int, exited: asyncio.Future[None], grace: float) -> None:
    """SIGTERM the group and give the command `grace` seconds to exit (SIGKILL follows anyway)."""
    kill_group(pgid, signal.SIGTERM)
    await asyncio.wait({exited}, timeout=grace)


async def _cleanup(pgid: int, transport: asyncio.SubprocessTransport | PidfdTransport,
                   protocol: _SupervisedProtocol, scope: TaskScope) -> None:
    """Kill whatever is left of the task: its group (background jobs the command left), then every
    process of its scope (ones that left the group: `setsid`, `nohup`, double forks); drain pipes."""
    kill_group(pgid, signal.SIGKILL)
    clean = False
    try:
        clean = await scope.kill_all()
        if not clean:
            log.warning("processes of the task in process group %d survived SIGKILL for %gs", pgid, SWEEP_TIMEOUT)
        await asyncio.wait({protocol.exited, protocol.closed}, timeout=DRAIN_TIMEOUT,
                           return_when=asyncio.ALL_COMPLETED)
    finally:
        transport.close()
        for stream in protocol.streams.values():
            stream.flush()
        scope.release(clean)


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
    inline_sh: bool = False,
    mask: Callable[[str], str] | None = None,
) -> ProcessOutcome:
    """Run `argv` in its own process group and wait for it; see the module docstring.

    Raises OSError if `argv[0]` cannot be executed. On cancellation the group gets SIGTERM, then
    SIGKILL after `grace` (default CANCEL_GRACE) and CancelledError is re-raised; on any other
    error the group is SIGKILLed. Every process the command left is killed when it exits, in its
    group or not (see activities.containment).
    `inline_sh`: when `argv` is `/bin/sh -c SCRIPT`, the supervising shell runs SCRIPT in a forked
    subshell (one exec less; the same guarantees), where `$$` is the group leader's pid and `$PPID` the worker's.
    `mask`: applied to each output line before anything sees it (callbacks, tails), e.g. to hide secrets.
    """
    if not argv:
        raise ValueError("run_supervised needs a command")
    argv = [resolve_executable(argv[0], cwd=cwd, env=env), *argv[1:]]
    if cwd is not None and not os.path.isdir(cwd):
        raise FileNotFoundError(2, "No such directory", cwd)
    loop = asyncio.get_running_loop()
    protocol = _SupervisedProtocol(loop, on_stdout, on_stderr, mask)
    scope = task_scope()
    try:
        transport = await _spawn(protocol, argv, cwd, scope.environment(env), inline_sh, scope.supervisor_arg())
    except BaseException:
        scope.release(await scope.kill_all())
        raise
    pgid = transport.get_pid()
    scope.started(pgid)
    try:
        await _wait_exit(protocol.exited, heartbeat, heartbeat_every)
    except asyncio.CancelledError:
        await _terminate(pgid, protocol.exited, CANCEL_GRACE.total_seconds() if grace is None else grace)
        raise
    finally:
        await _cleanup(pgid, transport, protocol, scope)
    if protocol.errors:
        raise protocol.errors[0]
    exit_code = transport.get_returncode()
    return ProcessOutcome(
        exit_code=exit_code if exit_code is not None else -signal.SIGKILL,
        stdout_tail=protocol.streams[1].tail.text(),
        stderr_tail=protocol.streams[2].tail.text(),
        pid=pgid,
    )
