"""The dev server wrapper against the real `temporal` CLI: discovery, start/ready/stop, `tflow server`."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from google.protobuf.duration_pb2 import Duration

from client.devserver import DevServer, free_port, indexed_value_type, port_is_free
from client.temporal_cli import TemporalCliNotFound, find_temporal_cli
from temporal_flows.metadata import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]


def _cli_or_skip() -> Path:
    try:
        return find_temporal_cli(obtain=False)
    except TemporalCliNotFound as err:
        pytest.skip(f"no temporal CLI available: {err}")


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TEMPORAL_CLI, an empty PATH entry, an empty tools dir and an empty CWD."""
    monkeypatch.delenv("TEMPORAL_CLI", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("TFLOW_TOOLS_DIR", str(tmp_path / "tools"))
    monkeypatch.chdir(empty)
    return tmp_path


def test_temporal_cli_env_var_wins(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = isolated_env / "my-temporal"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    on_path = isolated_env / "empty" / "temporal"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(on_path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("TEMPORAL_CLI", str(fake))
    assert find_temporal_cli(obtain=False) == fake
    monkeypatch.delenv("TEMPORAL_CLI")
    assert find_temporal_cli(obtain=False) == on_path


def test_temporal_cli_env_var_pointing_nowhere(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_CLI", str(isolated_env / "missing"))
    with pytest.raises(TemporalCliNotFound, match="TEMPORAL_CLI"):
        find_temporal_cli(obtain=False)


def test_tools_dir_is_searched(isolated_env: Path) -> None:
    tools = isolated_env / "tools"
    tools.mkdir()
    exe = tools / "temporal"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    assert find_temporal_cli(obtain=False) == exe


def test_nothing_found_says_how_to_fix(isolated_env: Path) -> None:
    with pytest.raises(TemporalCliNotFound) as info:
        find_temporal_cli(obtain=False)
    message = str(info.value)
    assert "TEMPORAL_ADDRESS" in message and "TEMPORAL_CLI" in message and "Go" in message


def test_ports() -> None:
    port = free_port()
    assert port_is_free(port)


async def _search_attributes(address: str) -> dict[str, int]:
    client = await Client.connect(address)
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    return dict(listed.custom_attributes)


async def test_devserver_start_stop_restart(tmp_path: Path) -> None:
    """Search attributes are registered, and a namespace registered before a restart survives it."""
    cli = _cli_or_skip()
    db = tmp_path / "nested" / "temporal.db"
    server = DevServer(port=free_port(), ui_port=free_port(), db_filename=db, cli=cli, headless=True)
    started = time.monotonic()
    await server.astart(timeout=60)
    try:
        assert time.monotonic() - started < 30
        assert server.running and server.pid and server.ui_url is None
        attrs = await _search_attributes(server.address)
        assert indexed_value_type("KeywordList") == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
        for name, kind in SEARCH_ATTRIBUTES.items():
            expected = indexed_value_type(kind)
            assert attrs.get(name) == expected, (name, attrs)
        client = await Client.connect(server.address)
        await client.workflow_service.register_namespace(RegisterNamespaceRequest(
            namespace="tflow-restart-check", workflow_execution_retention_period=Duration(seconds=86400)))
    finally:
        assert await asyncio.to_thread(server.stop) == 0
    assert not server.running and db.is_file()
    assert port_is_free(server.port)

    server.start(timeout=60)  # the sync API, called from inside a running loop
    try:
        client = await Client.connect(server.address)
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="tflow-restart-check"))
        assert described.namespace_info.name == "tflow-restart-check"
    finally:
        server.stop()


def _tflow_server_argv(port: int, ui_port: int, db: Path) -> list[str]:
    args = ["server", "--port", str(port), "--ui-port", str(ui_port), "--db-filename", str(db)]
    others = ("cli.run", "cli.validate", "cli.worker", "cli.runs")
    if all(importlib.util.find_spec(name) for name in others):
        return [sys.executable, "-m", "cli.app", *args]
    shim = (  # until every command module exists: the same command on a minimal app
        "import typer, cli.server\n"
        "app = typer.Typer(add_completion=False)\n"
        "app.callback()(lambda: None)\n"
        "cli.server.register(app)\n"
        "app()\n"
    )
    return [sys.executable, "-c", shim, *args]


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


async def test_tflow_server_command(tmp_path: Path) -> None:
    cli = _cli_or_skip()
    port, ui_port = free_port(), free_port()
    db = tmp_path / "server.db"
    env = {**os.environ, "TEMPORAL_CLI": str(cli), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_tflow_server_argv(port, ui_port, db), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        client = None
        while client is None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "tflow server did not become reachable"
            try:
                client = await Client.connect(f"127.0.0.1:{port}")
            except RuntimeError:
                await asyncio.sleep(0.2)
        attrs = await _search_attributes(f"127.0.0.1:{port}")
        assert set(SEARCH_ATTRIBUTES) <= set(attrs)
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=10) as response:
            assert response.status == 200
        temporal_pids = _children_of(proc.pid)
        assert temporal_pids, "the temporal CLI should run as a child of tflow server"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        output = proc.stdout.read() if proc.stdout else ""
        assert f"127.0.0.1:{port}" in output and f"http://127.0.0.1:{ui_port}" in output
        for pid in temporal_pids:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        assert port_is_free(port) and port_is_free(ui_port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tflow_server_without_cli_exits_3(tmp_path: Path) -> None:
    env = {**os.environ, "TEMPORAL_CLI": str(tmp_path / "nope"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(_tflow_server_argv(free_port(), free_port(), tmp_path / "x.db"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "TEMPORAL_CLI" in proc.stderr and "Traceback" not in proc.stderr
