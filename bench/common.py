"""What the bench scripts share: the dev server, worker subprocesses, CPU readings, flow files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

MAX_CONCURRENT_ACTIVITIES = 100
"""The one worker setting the bench chooses; both sides' workers get it (see worker_proc)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- CPU time of a process

@dataclass(frozen=True)
class CpuTimes:
    """Seconds of CPU: the process itself, and its reaped (waited-for) children."""

    self_s: float
    children_s: float

    @property
    def total_s(self) -> float:
        return self.self_s + self.children_s

    def __sub__(self, other: "CpuTimes") -> "CpuTimes":
        return CpuTimes(self.self_s - other.self_s, self.children_s - other.children_s)


def cpu_times(pid: int) -> CpuTimes:
    """utime+stime and cutime+cstime from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17 -> index n-3
    utime, stime, cutime, cstime = (int(fields[n - 3]) for n in (14, 15, 16, 17))
    return CpuTimes((utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK)


# ---------------------------------------------------------------- dev server

@contextlib.asynccontextmanager
async def dev_server(folder: Path, name: str = "bench"):
    """A headless dev server on free ports with its SQLite file and log in `folder`."""
    from client.devserver import DevServer

    server = DevServer(port=0, ui_port=0, db_filename=folder / f"{name}.db", headless=True,
                       log_file=folder / f"{name}-server.log")
    log(f"starting the Temporal dev server ({server.db_filename}) ...")
    await server.astart()
    log(f"dev server ready at {server.address} (pid {server.pid})")
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


# ---------------------------------------------------------------- worker subprocesses

@dataclass
class WorkerProcess:
    """`python -m bench.worker_proc` in its own process group; stderr goes to `log_path`."""

    kind: str
    address: str
    task_queue: str
    log_path: Path
    settings: dict[str, Any] | None = None
    proc: subprocess.Popen[str] | None = field(default=None, init=False)
    reported: dict[str, Any] = field(default_factory=dict, init=False)
    """What the worker printed with "ready": its kind and the settings of the Worker it runs."""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        argv = [PYTHON, "-m", "bench.worker_proc", "--kind", self.kind, "--address", self.address,
                "--task-queue", self.task_queue, "--max-concurrent-activities", str(MAX_CONCURRENT_ACTIVITIES)]
        if self.settings is not None:
            argv += ["--settings", json.dumps(self.settings)]
        return argv

    async def start(self, timeout: float = 60.0) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        except asyncio.TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.kind} worker did not get ready in {timeout:.0f}s:\n{self.log_tail()}") from None
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"{self.kind} worker failed to start (printed {line!r}):\n{self.log_tail()}")
        self.reported = json.loads(line[len("ready"):].strip() or "{}")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu(self) -> CpuTimes:
        return cpu_times(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group (the worker drains briefly), SIGKILL it after `timeout`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group (task processes)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return "(no worker log)"
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(tail) if tail else "(the worker log is empty)"


class Processes(contextlib.AbstractContextManager):
    """Stops every worker subprocess it was given, whatever happens (also on SIGTERM/SIGINT)."""

    def __init__(self) -> None:
        self.workers: list[WorkerProcess] = []

    def add(self, worker: WorkerProcess) -> WorkerProcess:
        self.workers.append(worker)
        return worker

    def __exit__(self, *exc: object) -> None:
        for worker in reversed(self.workers):
            with contextlib.suppress(Exception):
                worker.stop()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks stop the server and the workers."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# ---------------------------------------------------------------- flows

def commands_task(task_id: str, commands: Iterable[str]) -> dict[str, Any]:
    return {"id": task_id, "type": "commands", "commands": list(commands)}


def parallel_flow(flow_id: str, children: list[dict[str, Any]], concurrent: int | None = None,
                  namespace: str = "bench") -> dict[str, Any]:
    group: dict[str, Any] = {"id": "group", "type": "parallel"}
    if concurrent is not None:
        group["concurrent"] = concurrent
    group["tasks"] = children
    return {"id": flow_id, "namespace": namespace, "tasks": [group]}


def sequence_flow(flow_id: str, tasks: list[dict[str, Any]], namespace: str = "bench") -> dict[str, Any]:
    return {"id": flow_id, "namespace": namespace, "tasks": tasks}


def write_flow(folder: Path, flow: dict[str, Any]) -> Path:
    path = folder / f"{flow['id']}.yaml"
    path.write_text(yaml.safe_dump(flow, sort_keys=False, width=1 << 30))
    return path


def machine() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import temporalio

        info["temporalio"] = temporalio.__version__
    return info


def now() -> float:
    return time.perf_counter()
