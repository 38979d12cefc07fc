"""Run the Temporal dev server (`temporal server start-dev`): the one place that does.

`tflow server`, `tflow run` without an address and the tests all go through here, so the flags, the
search attributes and the readiness rule are the same everywhere. Finding or obtaining the `temporal`
binary itself is `client.temporal_cli`'s job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.processes import die_with_parent_command
from temporal_flows.metadata import DEFAULT_NAMESPACE, DEFAULT_UI_PORT, SEARCH_ATTRIBUTES
from client.temporal_cli import default_data_dir, find_temporal_cli


START_ATTEMPTS = 3
"""The dev server picks some internal ports itself; a start that loses such a race is retried."""


class DevServerError(RuntimeError):
    """The dev server could not be started or did not become ready; carries its log tail."""


class DevServerExited(DevServerError):
    """The dev server process ended while starting (e.g. it lost a race for an internal port)."""


def default_db_filename() -> Path:
    """The dev server's SQLite file, so runs survive server restarts (SPEC §7)."""
    return default_data_dir() / "temporal.db"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it; racy, but fine for local servers)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when `host:port` can be bound, i.e. no other server (Temporal or not) holds it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        if os.name != "nt":  # like Go servers do, so TIME_WAIT leftovers don't count as "in use"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def indexed_value_type(kind: str) -> int:
    """`KeywordList` (as SEARCH_ATTRIBUTES and the CLI's --search-attribute name it) → the API's
    INDEXED_VALUE_TYPE_KEYWORD_LIST."""
    return IndexedValueType.Value("INDEXED_VALUE_TYPE_" + re.sub(r"(?<=[a-z])(?=[A-Z])", "_", kind).upper())


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Add missing SEARCH_ATTRIBUTES: start-dev's --search-attribute is ignored for an existing db file."""
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        name: indexed_value_type(kind) for name, kind in SEARCH_ATTRIBUTES.items() if name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM the process group `proc` leads, SIGKILL it after `timeout`; its exit code. (The
    servers tflow starts, Temporal's and the tests' S3 server, each lead a group of their own.)"""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def _tail(path: Path | None, lines: int = 40) -> str:
    """The log's error lines (a Go panic's stack would hide them) and its last lines."""
    if path is None or not path.is_file():
        return ""
    text = path.read_text(errors="replace").splitlines()
    errors = [line for line in text if "level=ERROR" in line or line.startswith(("panic:", "Error:"))]
    stack_free = [line for line in text if not line.startswith(("\t", "go.", "github.com/", "main.", "goroutine"))]
    return "\n".join([*errors[:10], *[line for line in stack_free[-lines:] if line not in errors]])


SINGLE_PARTITION = {"matching.numTaskqueueReadPartitions": "1", "matching.numTaskqueueWritePartitions": "1"}
"""One partition per task queue on the dev server (one machine, a handful of workers). With the
default four, a task that finds no poller waiting is parked in a child partition's backlog and
reaches a worker ~2 s later: one such straggler made a 500-task fan-out take 2.5 s or 4.5 s at random."""


@dataclass(kw_only=True)
class DevServer:
    """One `temporal server start-dev` child process; use as a (sync or async) context manager.

    Port 0 means "pick a free one". `db_filename=None` keeps state in memory only.
    """

    port: int = 7233
    ui_port: int = DEFAULT_UI_PORT
    db_filename: Path | None = field(default_factory=default_db_filename)
    ip: str = "127.0.0.1"
    namespace: str = DEFAULT_NAMESPACE
    cli: Path | None = None
    log_file: Path | None = None
    headless: bool = False
    dynamic_config: dict[str, str] = field(default_factory=lambda: dict(SINGLE_PARTITION))
    """`--dynamic-config-value KEY=VALUE` settings; by default one partition per task queue."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_path: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.ip)
        self.ui_port = self.ui_port or free_port(self.ip)

    @property
    def _host(self) -> str:
        """The address clients dial: a wildcard bind is reached through loopback."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.ip, self.ip)

    @property
    def address(self) -> str:
        return f"[{self._host}]:{self.port}" if ":" in self._host else f"{self._host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return None if self.headless else f"http://{host}:{self.ui_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The full argv; search attributes and the version-check switch-off are always included."""
        if self.cli is None:
            self.cli = find_temporal_cli()
        cmd = [str(self.cli), "server", "start-dev", "--ip", self.ip, "--port", str(self.port)]
        cmd += ["--headless"] if self.headless else ["--ui-port", str(self.ui_port)]
        if self.db_filename is not None:
            cmd += ["--db-filename", str(self.db_filename)]
        if self.namespace != "default":  # "default" is always created; naming it twice is redundant
            cmd += ["--namespace", self.namespace]
        cmd += ["--log-level", "warn", "--dynamic-config-value", "frontend.enableServerVersionCheck=false"]
        for key, value in self.dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{key}={value}"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        return cmd

    def _spawn(self) -> None:
        """Start the child in its own process group; it gets SIGKILL if the spawning thread dies."""
        if self.running:
            raise DevServerError(f"the dev server is already running (pid {self.pid})")
        ports = [self.port] if self.headless else [self.port, self.ui_port]
        for port in ports:
            if not port_is_free(port, self.ip):
                raise DevServerError(
                    f"Port {port} on {self.ip} is already in use — is a Temporal server already running? "
                    "Use it via TEMPORAL_ADDRESS, stop it, or choose other ports (--port/--ui-port)."
                )
        cmd = self.command()
        if self.db_filename is not None:
            Path(self.db_filename).parent.mkdir(parents=True, exist_ok=True)
        if self.log_file is not None:
            self._log_path = Path(self.log_file)
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        else:  # a private log, so a failed start can still say why
            fd, name = tempfile.mkstemp(prefix="temporal-devserver-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        with open(self._log_path, "ab") as out:
            self._proc = subprocess.Popen(
                die_with_parent_command(cmd, "KILL"), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def start(self, timeout: float = 60.0) -> DevServer:
        """Spawn the server and block until it serves the namespace (works inside a running loop)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self._spawn()
            try:
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    asyncio.run(self._wait_ready(timeout))
                else:  # called from async code: probe on a helper thread with its own loop
                    with concurrent.futures.ThreadPoolExecutor(1) as pool:
                        pool.submit(asyncio.run, self._wait_ready(timeout)).result()
                return self
            except DevServerExited:
                self.stop()
                if attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        return self

    async def astart(self, timeout: float = 60.0) -> DevServer:
        """Async `start()`: spawn, then await readiness without blocking the event loop."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self._spawn()
            try:
                await self._wait_ready(timeout)
                return self
            except DevServerExited:
                await asyncio.to_thread(self.stop)
                if attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                await asyncio.to_thread(self.stop)
                raise
        return self

    async def _wait_ready(self, timeout: float) -> None:
        """Ready = frontend answers DescribeNamespace and the history service answers a lookup.

        The gRPC port opens ~0.5 s before the CLI prints "Server:", so a TCP probe alone is not enough.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        rpc_timeout = timedelta(seconds=5)
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise DevServerExited(f"The Temporal dev server exited (code {code}) while starting:\n{_tail(self._log_path)}")
            try:
                with socket.create_connection((self._host, self.port), timeout=0.5):
                    pass
                client = await asyncio.wait_for(Client.connect(self.address, namespace=self.namespace), 5)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace), timeout=rpc_timeout)
                try:
                    await client.workflow_service.get_workflow_execution_history(GetWorkflowExecutionHistoryRequest(
                        namespace=self.namespace, execution=WorkflowExecution(workflow_id=f"tflow-probe-{uuid.uuid4()}"),
                    ), timeout=rpc_timeout)
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise
                await ensure_search_attributes(client, self.namespace)
                return
            except (OSError, RuntimeError, RPCError, asyncio.TimeoutError) as err:
                last_error = err
            if time.monotonic() > deadline:
                self_desc = f"{self.address} (pid {self.pid})"
                raise DevServerError(
                    f"The Temporal dev server at {self_desc} was not ready after {timeout:.0f}s "
                    f"(last error: {last_error}). Its log:\n{_tail(self._log_path)}")
            await asyncio.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after `timeout`; returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        stop_process_group(proc, timeout)
        if self.log_file is None and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
        return proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server wrote (empty once a private log was removed by stop())."""
        return _tail(self._log_path, lines)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> DevServer:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

