"""Where a command's Temporal is and how to reach it, decided in one place.

CLI options, `TEMPORAL_*` environment variables and a profile of the Temporal CLI's config file are
resolved through the SDK's environment configuration (`temporalio.envconfig`), so `tflow` reaches a
cluster (plain, mTLS, Temporal Cloud with an API key) exactly as the `temporal` CLI does.
Precedence, as there: `--address`/`--namespace` > environment > profile > built-in default.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import TLSConfig

from client.codec import CodecKeyError, environment_data_converter
from temporal_flows.metadata import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE

CLOUD_UI = "https://cloud.temporal.io"
"""Temporal Cloud's Web UI: run pages are `/namespaces/<ns>/workflows/<id>` under it."""
CLOUD_HOST_SUFFIXES = (".tmprl.cloud", "api.temporal.io")
DEV_SERVER_UI_OFFSET = 1000
"""`temporal server start-dev` (and `tflow server`'s defaults) serve the Web UI at the gRPC port + 1000."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
UI_PROBE_SECONDS = 0.2


class TemporalUnreachable(Exception):
    """No Temporal server answered at the address (exit code 3)."""


class ConnectionConfigError(Exception):
    """The Temporal CLI config file, the profile or a TLS file named by them is wrong (exit code 2)."""


@dataclass(frozen=True)
class ClusterSettings:
    """What flags, environment and profile say about the cluster; `address` None: nobody named one
    (`tflow run` then brings its embedded server)."""

    address: Optional[str]
    namespace: str
    tls: bool | TLSConfig | None = None
    """None: as the SDK decides (on with an API key, else off)."""
    api_key: Optional[str] = field(default=None, repr=False)
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    origin: str = "default"
    """Where the address came from, for messages: `--address`, `TEMPORAL_ADDRESS` or the profile."""


def config_file(environ: Mapping[str, str]) -> Path:
    """The Temporal CLI's config file: `TEMPORAL_CONFIG_FILE`, else `temporalio/temporal.toml` in
    the user's config directory (as the CLI and the SDK look for it)."""
    if environ.get("TEMPORAL_CONFIG_FILE"):
        return Path(environ["TEMPORAL_CONFIG_FILE"])
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(environ.get("APPDATA") or Path.home())
    else:
        base = Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "temporalio" / "temporal.toml"


def cluster_settings(
    address: Optional[str] = None,
    namespace: Optional[str] = None,
    profile: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> ClusterSettings:
    """Resolve the flags against the environment and the profile (`profile`, else `TEMPORAL_PROFILE`,
    else `default`) of the config file; the SDK applies env over profile, explicit flags win here."""
    environ = os.environ if environ is None else environ
    path = config_file(environ)
    profile_name = profile or environ.get("TEMPORAL_PROFILE") or "default"
    where = f"profile {profile_name!r} of {path}"
    if environ.get("TEMPORAL_CONFIG_FILE") and not path.exists():
        raise ConnectionConfigError(f"TEMPORAL_CONFIG_FILE={path}: no such file")
    try:
        loaded = ClientConfigProfile.load(profile, override_env_vars=dict(environ))
        config: Mapping[str, Any] = loaded.to_client_connect_config()
    except OSError as error:  # a TLS certificate or key file named by the profile or TEMPORAL_TLS_*
        raise ConnectionConfigError(
            f"cannot read TLS file {error.filename} (named by TEMPORAL_TLS_* or {where}): {error.strerror}") from None
    except Exception as error:  # noqa: BLE001 - the SDK's ConfigError: bad TOML, unknown profile
        raise ConnectionConfigError(f"Temporal config ({where}): {error}") from None
    if address:
        origin = "--address"
    elif environ.get("TEMPORAL_ADDRESS"):
        origin = "TEMPORAL_ADDRESS"
    else:
        origin = where if config.get("target_host") else "default"
    return ClusterSettings(
        address=address or config.get("target_host"),
        namespace=namespace or config.get("namespace") or DEFAULT_NAMESPACE,
        tls=config.get("tls"),
        api_key=config.get("api_key"),
        rpc_metadata=dict(config.get("rpc_metadata") or {}),
        origin=origin,
    )


@dataclass(frozen=True)
class Connection:
    """A command's cluster: where to connect and how, its task queue, and its Web UI (None: unknown)."""

    address: str
    namespace: str
    task_queue: str = DEFAULT_TASK_QUEUE
    ui_base: Optional[str] = None
    tls: bool | TLSConfig | None = None
    api_key: Optional[str] = field(default=None, repr=False)
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    origin: str = "default"

    @staticmethod
    def of(
        address: Optional[str],
        namespace: Optional[str],
        task_queue: str = DEFAULT_TASK_QUEUE,
        ui_url: Optional[str] = None,
        profile: Optional[str] = None,
    ) -> Connection:
        """The connection the options, environment and config profile describe (the local dev
        server's address when none does)."""
        return Connection.to(cluster_settings(address, namespace, profile), task_queue, ui_url)

    @staticmethod
    def to(settings: ClusterSettings, task_queue: str = DEFAULT_TASK_QUEUE, ui_url: Optional[str] = None) -> Connection:
        address = settings.address or DEFAULT_ADDRESS
        return Connection(
            address, settings.namespace, task_queue, ui_url or known_ui_base(address),
            tls=settings.tls, api_key=settings.api_key, rpc_metadata=settings.rpc_metadata, origin=settings.origin,
        )

    def connect_config(self) -> dict[str, Any]:
        """Keyword arguments of `Client.connect`."""
        config: dict[str, Any] = {"target_host": self.address, "namespace": self.namespace}
        if self.tls is not None:
            config["tls"] = self.tls
        if self.api_key is not None:
            config["api_key"] = self.api_key
        if self.rpc_metadata:
            config["rpc_metadata"] = dict(self.rpc_metadata)
        return config

    def describe(self) -> str:
        """`host:port (namespace ns, mTLS, address from …)` for messages."""
        security = []
        if isinstance(self.tls, TLSConfig):
            security.append("mTLS" if self.tls.client_cert else "TLS")
        elif self.tls or (self.tls is None and self.api_key):
            security.append("TLS")
        if self.api_key:
            security.append("API key")
        details = [f"namespace {self.namespace}", *security]
        if self.origin != "default":
            details.append(f"address from {self.origin}")
        return f"{self.address} ({', '.join(details)})"


def _host_and_port(address: str) -> tuple[str, Optional[int]]:
    host, _, port = address.rpartition(":")
    if not host or "]" in port:  # no port, or a bare IPv6 address
        return address.strip("[]"), None
    return host.strip("[]"), int(port) if port.isdigit() else None


def known_ui_base(address: str) -> Optional[str]:
    """The Web UI of the server at `address` when it can be known: Temporal Cloud's, or a local dev
    server's (gRPC port + 1000, checked to be listening); None otherwise (`--ui-url` says it)."""
    host, port = _host_and_port(address)
    if host.endswith(CLOUD_HOST_SUFFIXES):
        return CLOUD_UI
    if host in LOOPBACK_HOSTS and port is not None and port + DEV_SERVER_UI_OFFSET < 65536:
        ui_port = port + DEV_SERVER_UI_OFFSET
        try:
            socket.create_connection((host, ui_port), timeout=UI_PROBE_SECONDS).close()
        except OSError:
            return None
        return f"http://[{host}]:{ui_port}" if ":" in host else f"http://{host}:{ui_port}"
    return None


_runtime_configured = False


def configure_runtime() -> None:
    """Send the SDK core's own logs (e.g. payload-size warnings) to Python logging, i.e. stderr or
    the worker's log file, never stdout: `tflow run --json` prints one JSON object and nothing else."""
    global _runtime_configured
    if _runtime_configured:
        return
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=logging_config)), error_if_already_set=False)
    _runtime_configured = True


async def connect(target: Connection | str, namespace: Optional[str] = None) -> Client:
    """A client of `target`: a resolved Connection (TLS, API key), or a bare address (plain, e.g.
    the embedded dev server); its payloads encrypted when `TFLOW_CODEC_KEY(_FILE)` names a key."""
    connection = target if isinstance(target, Connection) else Connection(target, namespace or DEFAULT_NAMESPACE)
    try:
        converter = environment_data_converter()
    except CodecKeyError as error:
        raise ConnectionConfigError(str(error)) from None
    configure_runtime()
    try:
        return await Client.connect(**connection.connect_config(), data_converter=converter)
    except Exception as error:  # noqa: BLE001 - the SDK raises several kinds for an absent server
        raise TemporalUnreachable(
            f"cannot reach Temporal at {connection.describe()}: {error}. {_unreachable_hint(connection)}"
        ) from None


def _unreachable_hint(connection: Connection) -> str:
    if connection.tls or connection.api_key:
        return "Check the address, the TLS certificates and the API key."
    if connection.origin == "default":
        return "Start one with `tflow server`."
    if connection.origin == "TEMPORAL_ADDRESS":
        return "Is the server up? (Unset TEMPORAL_ADDRESS and `tflow run` uses its embedded server.)"
    return "Is the server up at this address?"
