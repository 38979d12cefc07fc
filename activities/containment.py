"""Every process a task starts, found and killed when the task ends — even ones that left its
process group (`setsid`, `nohup`, a double fork `(cmd &) &`).

Two ways, chosen once per worker process (:func:`task_scope`):

- **cgroup** (cgroup v2 writable, e.g. a root worker): each task's supervisor moves itself, before
  it starts anything, into a cgroup of its own (`<worker's cgroup>/tflow-worker-<pid>/task-<n>`);
  no process can leave a cgroup by itself, so at the task's end a kill of every thread listed in
  its `cgroup.threads` (until none is left) kills them all. The cgroups are threaded where they can
  be (see CgroupPool) and reused from a pool: a mkdir/rmdir per task would cost more than the move.
- **token** (elsewhere): the worker makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so a
  task's orphans are re-parented to the worker instead of init, and the task's environment carries
  `TFLOW_TASK_TOKEN=<worker pid>.<n>`. At the task's end the worker's children that carry the token
  (or belong to the task's session) are killed with all their descendants and reaped. A process
  that both clears its environment and leaves the task's session escapes this way.

The supervising `/bin/sh` cannot be the subreaper itself: the attribute is not inherited across
fork, and setting it there would need an exec (or Python between fork and exec) per task.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import functools
import itertools
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_ENV = "TFLOW_TASK_TOKEN"
"""The environment variable naming a task run's processes in token mode."""
CGROUPS_ENV = "TFLOW_TASK_CGROUPS"
"""`off` makes a worker use token mode even where it could create cgroups."""
SWEEP_TIMEOUT = 2.0
"""How long the end of a task may spend killing what it left (a process forking fast is caught)."""
SWEEP_PAUSE = 0.005
PR_SET_CHILD_SUBREAPER = 36

_counter = itertools.count(1)


def _read(path: str | Path) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


# -- cgroup mode ---------------------------------------------------------------------------------


def _own_cgroup_dir() -> Path | None:
    """Where this process's cgroup v2 is mounted here, or None without a cgroup v2 mount."""
    own = next((line[3:] for line in _read("/proc/self/cgroup").splitlines() if line.startswith("0::")), None)
    if own is None:
        return None
    for line in _read("/proc/self/mountinfo").splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            mount_point = fields[0].split()[4]
            path = Path(mount_point) / own.strip().lstrip("/")
            if (path / "cgroup.procs").exists():
                return path
    return None


def _remove_stale(parent: Path) -> None:
    """Empty `tflow-worker-<pid>` cgroups of workers that died (SIGKILLed ones leave theirs), and
    this process's own earlier ones."""
    for stale in parent.glob("tflow-worker-*"):
        pid = stale.name.removeprefix("tflow-worker-")
        if not pid.isdigit() or (int(pid) != os.getpid() and Path(f"/proc/{pid}").exists()):
            continue
        for task in stale.glob("task-*"):
            _rmdir(task)
        _rmdir(stale)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except OSError:
        return False


class CgroupPool:
    """This worker's task cgroups: empty ones wait in `free` for the next task. `threaded`: they are
    threaded cgroups, which a single-threaded process joins through `cgroup.threads` without the
    RCU grace period a `cgroup.procs` move waits for (~5-10 ms per task on a busy machine)."""

    def __init__(self, base: Path, threaded: bool) -> None:
        self.base = base
        self.threaded = threaded
        self.free: list[str] = []

    def acquire(self) -> str:
        """An empty task cgroup's path (a str: this is on every task's path, Path costs more)."""
        if self.free:
            return self.free.pop()
        path = self.base / f"task-{next(_counter)}"
        path.mkdir()
        if self.threaded:
            (path / "cgroup.type").write_text("threaded")
        return str(path)

    def join_file(self, path: str) -> str:
        """What the supervisor writes `0` (itself) to, to join the cgroup at `path`."""
        return f"{path}/cgroup.threads" if self.threaded else f"{path}/cgroup.procs"

    def release(self, path: str) -> None:
        self.free.append(path)

    def remove_all(self) -> None:
        for path in [*map(Path, self.free), *self.base.glob("task-*")]:
            _rmdir(path)
        self.free.clear()
        _rmdir(self.base)


def _probe(pool: CgroupPool) -> bool:
    """Can a `/bin/sh` join one of the pool's cgroups as the supervisor does it (and leave it empty)?"""
    try:
        path = pool.acquire()
        probe = subprocess.run(["/bin/sh", "-c", 'echo 0 >"$1"', "tflow-probe", str(pool.join_file(path))],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    if probe.returncode != 0 or _cgroup_pids(path):
        return False
    pool.release(path)
    return True


def _make_pool() -> CgroupPool | None:
    """A pool under this process's cgroup if a child process can join one of its cgroups: threaded
    cgroups if this cgroup can be a threaded domain, else domain ones (probed with a real `/bin/sh`)."""
    own = _own_cgroup_dir()
    if own is None:
        return None
    base = own / f"tflow-worker-{os.getpid()}"
    _remove_stale(own)
    for threaded in (True, False):
        try:
            base.mkdir()
            if threaded:
                (base / "cgroup.type").write_text("threaded")
        except OSError:
            _rmdir(base)
            continue
        pool = CgroupPool(base, threaded)
        if _probe(pool):
            atexit.register(pool.remove_all)
            return pool
        pool.remove_all()
    return None


@functools.cache
def cgroup_pool() -> CgroupPool | None:
    """This worker's cgroup pool, or None where tasks cannot get cgroups (token mode)."""
    if os.environ.get(CGROUPS_ENV, "").lower() in ("off", "0", "no", "false"):
        return None
    return _make_pool()


def _cgroup_pids(path: str) -> list[int]:
    """The threads in the cgroup (the processes' own ids among them); `cgroup.procs` cannot be read
    in a threaded cgroup, and `kill` on any thread's id signals its whole process."""
    try:
        fd = os.open(f"{path}/cgroup.threads", os.O_RDONLY)
    except OSError:
        return []
    try:
        data = b"".join(iter(lambda: os.read(fd, 65536), b""))
    finally:
        os.close(fd)
    return [int(word) for word in data.split()]


async def _empty_cgroup(path: str, deadline: float) -> bool:
    """SIGKILL everything in the cgroup and wait until it is empty (or the deadline). Not through
    `cgroup.kill`: threaded cgroups do not have it."""
    while pids := _cgroup_pids(path):
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(SWEEP_PAUSE)
    return True


# -- token mode ----------------------------------------------------------------------------------


@functools.cache
def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux 3.4+); once per process."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class _Stat:
    state: str
    sid: int


def _stat(pid: int) -> _Stat | None:
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return _Stat(state=fields[0], sid=int(fields[3]))


def _children(pid: int) -> list[int]:
    """Direct children of every thread of `pid` (/proc/PID/task/TID/children)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        found.extend(int(word) for word in _read(f"/proc/{pid}/task/{tid}/children").split())
    return found


def _own_children() -> list[int]:
    """This process's children: orphans are re-parented to its first live thread (the main one)."""
    me = os.getpid()
    return [int(word) for word in _read(f"/proc/{me}/task/{me}/children").split()]


def _descendants(root: int) -> list[int]:
    """`root` and every process below it, parents first."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(_children(pid))
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _has_token(pid: int, token: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return f"{TOKEN_ENV}={token}".encode() in environ.read().split(b"\0")
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- a task's scope ------------------------------------------------------------------------------


_supervisors: set[int] = set()
"""Pids of this worker's running supervisors (never swept or reaped by another task's end)."""


@dataclass
class TaskScope:
    """Where one task run's processes are kept: a cgroup, or a token (see the module docstring)."""

    cgroup: str | None = None
    token: str | None = None
    pool: CgroupPool | None = None
    supervisor: int | None = None
    _killed: set[int] = field(default_factory=set)

    def supervisor_arg(self) -> str:
        """How the supervisor learns its scope: the absolute path of its cgroup's file to join, or
        the token."""
        if self.cgroup is not None and self.pool is not None:
            return self.pool.join_file(self.cgroup)
        return str(self.token)

    def environment(self, env: Mapping[str, str] | None) -> Mapping[str, str] | None:
        """The task's environment: with the token in token mode (the supervisor's own, so forked
        shells carry it too), unchanged in cgroup mode."""
        if self.token is None:
            return env
        return {**(env if env is not None else os.environ), TOKEN_ENV: self.token}

    def started(self, supervisor: int) -> None:
        self.supervisor = supervisor
        _supervisors.add(supervisor)

    async def kill_all(self) -> bool:
        """SIGKILL every process of the task still alive (the supervisor's group was killed already);
        False if some survived SWEEP_TIMEOUT."""
        deadline = time.monotonic() + SWEEP_TIMEOUT
        if self.cgroup is not None and self.pool is not None:
            return await _empty_cgroup(self.cgroup, deadline)
        if self.supervisor is None:
            return True
        while self._sweep_once() or _group_alive(self.supervisor):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(SWEEP_PAUSE)
        return True

    def _sweep_once(self) -> bool:
        """Kill (with their descendants) and reap this worker's children that are the task's: they
        carry its token or sit in its session. True if any was found."""
        session = self.supervisor
        found = False
        for pid in _own_children():
            if pid == session or pid in _supervisors:
                continue
            stat = _stat(pid)
            if stat is None:
                continue
            if stat.state in ("Z", "X"):
                if stat.sid == session or pid in self._killed:
                    _reap(pid)
                    found = True
            elif stat.sid == session or pid in self._killed or _has_token(pid, str(self.token)):
                for member in _descendants(pid):
                    _signal(member, signal.SIGKILL)
                    self._killed.add(member)
                found = True
        return found

    def release(self, clean: bool) -> None:
        """Give the cgroup back to the pool (only an empty one) and forget the supervisor."""
        if self.supervisor is not None:
            _supervisors.discard(self.supervisor)
        if self.cgroup is not None and self.pool is not None:
            if clean:  # kill_all saw it empty, and nothing can join it from outside
                self.pool.release(self.cgroup)
            else:
                log.warning("processes of a task survived SIGKILL in %s; that cgroup is not reused", self.cgroup)


def task_scope() -> TaskScope:
    """A scope for the next task run (see the module docstring for the two modes)."""
    pool = cgroup_pool()
    if pool is not None:
        try:
            return TaskScope(cgroup=pool.acquire(), pool=pool)
        except OSError as exc:
            log.warning("cannot create a task cgroup (%s); this task's processes are tracked by a token", exc)
    become_subreaper()
    return TaskScope(token=f"{os.getpid()}.{next(_counter)}")
