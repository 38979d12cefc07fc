"""`tflow` reaches the session's server the way the `temporal` CLI would: through a profile of a
config file (no `--address`), with flag > environment > profile, and over mutual TLS."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.client import Client

from client.devserver import free_port, port_is_free
from tests.support import REPO, cli_env, run_flow, tflow, write_flow

FLOW = """
    id: {flow_id}
    namespace: tests.connection
    tasks:
      - id: hello
        type: return
        format: hello
    """


async def tflow_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """One `tflow` process (no TEMPORAL_* inherited), run off the event loop the test's worker uses."""
    return await asyncio.to_thread(
        subprocess.run, tflow(*args), cwd=REPO, env=cli_env(**env), capture_output=True, text=True, timeout=60
    )


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def write_config(folder: Path, text: str) -> dict[str, str]:
    """The environment naming a Temporal CLI config file with `text`."""
    path = folder / "temporal.toml"
    path.write_text(textwrap.dedent(text))
    return {"TEMPORAL_CONFIG_FILE": str(path)}


async def finished_run(client: Client, worker: str, folder: Path) -> tuple[str, str]:
    """(run id, flow id) of a run that succeeded on the session server."""
    flow_id = f"conn-{uuid.uuid4().hex[:8]}"
    result = await run_flow(client, write_flow(folder, FLOW.format(flow_id=flow_id)), worker)
    assert result["state"] == "SUCCESS", result
    return result["run_id"], flow_id


def ui_port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1]) + 1000


async def test_status_and_list_through_a_config_profile(client: Client, worker: str, temporal_address: str, tmp_path: Path):
    run_id, flow_id = await finished_run(client, worker, tmp_path)
    env = write_config(tmp_path, f"""
        [profile.default]
        address = "{temporal_address}"
        namespace = "default"
        """)
    status = await tflow_cli("status", run_id, "--json", **env)
    assert status.returncode == 0, explain(status)
    result = json.loads(status.stdout)
    assert (result["run_id"], result["state"]) == (run_id, "SUCCESS")
    assert [task["task_id"] for task in result["task_runs"]] == ["hello"]
    if port_is_free(ui_port_of(temporal_address)):  # no Web UI where a dev server would serve it
        assert result["ui_url"] is None
        human = await tflow_cli("status", run_id, **env)
        assert "Temporal UI: unknown (pass --ui-url or set TEMPORAL_UI_URL)" in human.stdout, explain(human)
    given = await tflow_cli("status", run_id, "--json", **env, TEMPORAL_UI_URL="http://ui.example:8080/")
    assert json.loads(given.stdout)["ui_url"] == f"http://ui.example:8080/namespaces/default/workflows/{run_id}"

    for _ in range(20):  # visibility lags a little behind a run's start
        listed = await tflow_cli("list", "--flow", flow_id, "--json", **env)
        assert listed.returncode == 0, explain(listed)
        if [row["run_id"] for row in json.loads(listed.stdout)] == [run_id]:
            break
        await asyncio.sleep(0.25)
    else:
        pytest.fail(f"tflow list never showed {run_id}: {listed.stdout}")


async def test_flag_beats_environment_beats_profile(client: Client, worker: str, temporal_address: str, tmp_path: Path):
    run_id, _ = await finished_run(client, worker, tmp_path)
    nowhere = f"127.0.0.1:{free_port()}"  # nobody listens there
    env = write_config(tmp_path, f"""
        [profile.default]
        address = "{temporal_address}"

        [profile.elsewhere]
        address = "{nowhere}"
        """)
    elsewhere = await tflow_cli("status", run_id, "--profile", "elsewhere", **env)
    assert elsewhere.returncode == 3, explain(elsewhere)
    assert f"cannot reach Temporal at {nowhere}" in elsewhere.stderr and "profile 'elsewhere'" in elsewhere.stderr
    assert "Traceback" not in elsewhere.stderr

    outcomes = await asyncio.gather(
        tflow_cli("status", run_id, "--json", "--profile", "elsewhere", "--address", temporal_address, **env),
        tflow_cli("status", run_id, "--json", **env, TEMPORAL_PROFILE="elsewhere", TEMPORAL_ADDRESS=temporal_address),
        tflow_cli("status", run_id, "--json", "--address", temporal_address, **env, TEMPORAL_ADDRESS=nowhere),
    )
    for proc in outcomes:  # flag over profile, environment over profile, flag over environment
        assert proc.returncode == 0, explain(proc)
        assert json.loads(proc.stdout)["state"] == "SUCCESS"


async def test_run_sends_the_run_to_the_profile_cluster(client: Client, worker: str, temporal_address: str, tmp_path: Path):
    """An address that only a config profile gives counts as an address: no embedded server."""
    flow_id = f"conn-{uuid.uuid4().hex[:8]}"
    flow = write_flow(tmp_path, FLOW.format(flow_id=flow_id))
    env = write_config(tmp_path, f"""
        [profile.default]
        address = "{temporal_address}"
        """)
    started = await tflow_cli("run", str(flow), "--detach", "--json", "--task-queue", worker, **env, TFLOW_HOME=str(tmp_path / "home"))
    assert started.returncode == 0, explain(started)
    run_id = json.loads(started.stdout)["run_id"]
    assert run_id.startswith(flow_id)
    assert (await client.get_workflow_handle(run_id).result())["state"] == "SUCCESS"
    assert not (tmp_path / "home" / "temporal.db").exists(), "no embedded server was started"


async def test_a_wrong_profile_is_a_usage_error(tmp_path: Path):
    env = write_config(tmp_path, """
        [profile.default]
        address = "127.0.0.1:7233"
        """)
    missing, bad_file = await asyncio.gather(
        tflow_cli("list", "--profile", "prod", **env),
        tflow_cli("list", TEMPORAL_CONFIG_FILE=str(tmp_path / "absent.toml")),
    )
    for proc, message in ((missing, "Profile 'prod' not found"), (bad_file, "absent.toml: no such file")):
        assert proc.returncode == 2, explain(proc)
        assert message in proc.stderr and "Traceback" not in proc.stderr and "internal error" not in proc.stderr


# -- mutual TLS: the dev server speaks no TLS, so a TLS frontend that demands a client certificate
#    stands in front of it (TLS ends there; the client's side is exactly what it is with a cluster)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate (openssl CLI)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=tflow-test-ca")
    for who, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        openssl("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}")
        (folder / f"{who}.ext").write_text(
            f"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{who}.pem", "-days", "1", "-extfile", f"{who}.ext")
    return {name: folder / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class MutualTlsFrontend:
    """Accepts TLS connections that present a client certificate signed by the CA and relays them
    to the plain server (gRPC over HTTP/2, negotiated by ALPN). Runs on a thread of its own."""

    def __init__(self, target: str, files: dict[str, Path]) -> None:
        self.target_host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files["ca.pem"]))
        self.context.load_cert_chain(str(files["server.pem"]), str(files["server.key"]))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.set_alpn_protocols(["h2"])
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, context: None)  # refused handshakes are expected
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.address = ""

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        await asyncio.gather(self._relay(reader, upstream_writer), self._relay(upstream_reader, writer))

    def __enter__(self) -> MutualTlsFrontend:
        ready = threading.Event()

        async def start() -> None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
            self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
            ready.set()

        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop)
        assert ready.wait(10), "the TLS frontend did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def mtls_files(tmp_path: Path) -> Iterator[dict[str, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make certificates")
    folder = tmp_path / "certs"
    folder.mkdir()
    yield make_certificates(folder)


async def test_mutual_tls_through_a_profile(client: Client, worker: str, temporal_address: str, tmp_path: Path, mtls_files: dict[str, Path]):
    run_id, _ = await finished_run(client, worker, tmp_path)
    with MutualTlsFrontend(temporal_address, mtls_files) as frontend:
        env = write_config(tmp_path, f"""
            [profile.mtls]
            address = "{frontend.address}"
            namespace = "default"
            [profile.mtls.tls]
            client_cert_path = "{mtls_files['client.pem']}"
            client_key_path = "{mtls_files['client.key']}"
            server_ca_cert_path = "{mtls_files['ca.pem']}"
            server_name = "localhost"

            [profile.no-client-cert]
            address = "{frontend.address}"
            [profile.no-client-cert.tls]
            server_ca_cert_path = "{mtls_files['ca.pem']}"
            server_name = "localhost"
            """)
        with_cert, without_cert, plain = await asyncio.gather(
            tflow_cli("status", run_id, "--json", "--profile", "mtls", **env),
            tflow_cli("status", run_id, "--json", "--profile", "no-client-cert", **env),
            tflow_cli("status", run_id, "--json", "--address", frontend.address),
        )
    assert with_cert.returncode == 0, explain(with_cert)
    assert json.loads(with_cert.stdout)["state"] == "SUCCESS"
    for refused in (without_cert, plain):
        assert refused.returncode == 3, explain(refused)
        assert f"cannot reach Temporal at {frontend.address}" in refused.stderr
    assert "TLS" in without_cert.stderr  # the message says how it tried
