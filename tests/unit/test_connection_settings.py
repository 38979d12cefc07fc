"""Which cluster a command reaches and how: flag > environment > config profile > default, TLS and
API keys as the SDK's environment configuration reads them, and the Web UI link."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from client.connection import (
    CLOUD_UI,
    Connection,
    ConnectionConfigError,
    cluster_settings,
    known_ui_base,
)
from client.runs import ui_url

PROFILES = """
[profile.default]
address = "profile-default.example:7233"
namespace = "ns-from-default-profile"

[profile.staging]
address = "staging.example:7233"
namespace = "staging"
"""


def config(tmp_path: Path, text: str = PROFILES) -> dict[str, str]:
    """An environment whose only Temporal setting is a config file holding `text`."""
    path = tmp_path / "temporal.toml"
    path.write_text(textwrap.dedent(text))
    return {"TEMPORAL_CONFIG_FILE": str(path)}


def certificates(tmp_path: Path) -> dict[str, Path]:
    """Stand-in PEM files: the SDK reads them into bytes; their content is not checked here."""
    files = {name: tmp_path / f"{name}.pem" for name in ("client-cert", "client-key", "ca")}
    for name, path in files.items():
        path.write_text(f"-----BEGIN {name.upper()}-----\n")
    return files


class TestPrecedence:
    def test_nothing_configured_means_no_address_and_the_default_namespace(self, tmp_path: Path):
        settings = cluster_settings(environ={"TEMPORAL_CONFIG_FILE": os.devnull})
        assert settings.address is None and settings.namespace == "default" and settings.origin == "default"
        connection = Connection.to(settings, "q")
        assert (connection.address, connection.namespace, connection.task_queue) == ("127.0.0.1:7233", "default", "q")

    def test_the_default_profile_of_the_config_file(self, tmp_path: Path):
        environ = config(tmp_path)
        settings = cluster_settings(environ=environ)
        assert settings.address == "profile-default.example:7233"
        assert settings.namespace == "ns-from-default-profile"
        assert settings.origin == f"profile 'default' of {environ['TEMPORAL_CONFIG_FILE']}"

    def test_a_named_profile_from_the_flag_or_the_environment(self, tmp_path: Path):
        environ = config(tmp_path)
        assert cluster_settings(profile="staging", environ=environ).address == "staging.example:7233"
        assert cluster_settings(environ={**environ, "TEMPORAL_PROFILE": "staging"}).namespace == "staging"
        flag_wins = cluster_settings(profile="default", environ={**environ, "TEMPORAL_PROFILE": "staging"})
        assert flag_wins.address == "profile-default.example:7233"

    def test_environment_wins_over_the_profile(self, tmp_path: Path):
        environ = {**config(tmp_path), "TEMPORAL_ADDRESS": "env.example:7233", "TEMPORAL_NAMESPACE": "env-ns"}
        settings = cluster_settings(environ=environ)
        assert (settings.address, settings.namespace, settings.origin) == ("env.example:7233", "env-ns", "TEMPORAL_ADDRESS")

    def test_flags_win_over_environment_and_profile(self, tmp_path: Path):
        environ = {**config(tmp_path), "TEMPORAL_ADDRESS": "env.example:7233", "TEMPORAL_NAMESPACE": "env-ns"}
        settings = cluster_settings("flag.example:7233", "flag-ns", profile="staging", environ=environ)
        assert (settings.address, settings.namespace, settings.origin) == ("flag.example:7233", "flag-ns", "--address")

    def test_a_flag_replaces_one_field_only(self, tmp_path: Path):
        """As in the `temporal` CLI: `--address` keeps the profile's namespace (and its TLS)."""
        settings = cluster_settings("flag.example:7233", profile="staging", environ=config(tmp_path))
        assert (settings.address, settings.namespace) == ("flag.example:7233", "staging")

    def test_connection_of_reads_the_process_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        for name, value in config(tmp_path).items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
        monkeypatch.delenv("TEMPORAL_NAMESPACE", raising=False)
        monkeypatch.delenv("TEMPORAL_PROFILE", raising=False)
        connection = Connection.of(None, None, "q", profile="staging")
        assert connection.connect_config() == {"target_host": "staging.example:7233", "namespace": "staging"}
        assert Connection.of("flag:1", "ns", "q").connect_config() == {"target_host": "flag:1", "namespace": "ns"}


class TestSecurity:
    def test_tls_files_of_a_profile_reach_the_sdk_as_bytes(self, tmp_path: Path):
        files = certificates(tmp_path)
        environ = config(tmp_path, f"""
            [profile.default]
            address = "mtls.example:7233"
            [profile.default.tls]
            client_cert_path = "{files['client-cert']}"
            client_key_path = "{files['client-key']}"
            server_ca_cert_path = "{files['ca']}"
            server_name = "frontend.example"
        """)
        tls = Connection.to(cluster_settings(environ=environ)).connect_config()["tls"]
        assert tls == TLSConfig(
            server_root_ca_cert=files["ca"].read_bytes(), domain="frontend.example",
            client_cert=files["client-cert"].read_bytes(), client_private_key=files["client-key"].read_bytes(),
        )
        assert "mTLS" in Connection.to(cluster_settings(environ=environ)).describe()

    def test_tls_from_environment_variables(self, tmp_path: Path):
        files = certificates(tmp_path)
        environ = {
            "TEMPORAL_ADDRESS": "mtls.example:7233",
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(files["client-cert"]),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(files["client-key"]),
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(files["ca"]),
        }
        tls = cluster_settings(environ=environ).tls
        assert isinstance(tls, TLSConfig)
        assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert) == tuple(
            files[name].read_bytes() for name in ("client-cert", "client-key", "ca"))
        assert cluster_settings(environ={"TEMPORAL_TLS": "true"}).tls == TLSConfig()

    def test_an_api_key_turns_tls_on_unless_disabled(self, tmp_path: Path):
        environ = config(tmp_path, """
            [profile.cloud]
            address = "my-ns.a1b2c.tmprl.cloud:7233"
            namespace = "my-ns.a1b2c"
            api_key = "the-key"
        """)
        cloud = Connection.to(cluster_settings(profile="cloud", environ=environ))
        assert cloud.connect_config() == {
            "target_host": "my-ns.a1b2c.tmprl.cloud:7233", "namespace": "my-ns.a1b2c", "api_key": "the-key", "tls": True,
        }
        assert "the-key" not in repr(cloud) and "API key" in cloud.describe()
        from_env = cluster_settings(environ={"TEMPORAL_ADDRESS": "x:7233", "TEMPORAL_API_KEY": "k"})
        assert (from_env.api_key, from_env.tls) == ("k", True)
        disabled = cluster_settings(environ={"TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"})
        assert disabled.tls is False

    def test_grpc_metadata_from_the_environment(self):
        settings = cluster_settings(environ={"TEMPORAL_GRPC_META_X_TENANT": "blue"})
        assert Connection.to(settings).connect_config()["rpc_metadata"] == {"x-tenant": "blue"}


class TestConfigErrors:
    def test_unknown_profile(self, tmp_path: Path):
        with pytest.raises(ConnectionConfigError, match="Profile 'prod' not found"):
            cluster_settings(profile="prod", environ=config(tmp_path))

    def test_missing_tls_file_is_named(self, tmp_path: Path):
        environ = {"TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "nope.pem")}
        with pytest.raises(ConnectionConfigError, match=r"cannot read TLS file .*nope\.pem"):
            cluster_settings(environ=environ)

    def test_bad_toml_names_the_file_and_line(self, tmp_path: Path):
        environ = config(tmp_path, "[profile.default]\naddress = \n")
        with pytest.raises(ConnectionConfigError, match=r"temporal\.toml.*line 2"):
            cluster_settings(environ=environ)

    def test_a_named_config_file_must_exist(self, tmp_path: Path):
        with pytest.raises(ConnectionConfigError, match="TEMPORAL_CONFIG_FILE=.*absent.toml: no such file"):
            cluster_settings(environ={"TEMPORAL_CONFIG_FILE": str(tmp_path / "absent.toml")})


class TestWebUi:
    def test_temporal_cloud(self):
        assert known_ui_base("my-ns.a1b2c.tmprl.cloud:7233") == CLOUD_UI
        assert known_ui_base("us-east-1.aws.api.temporal.io:7233") == CLOUD_UI
        link = ui_url(CLOUD_UI, "my-ns.a1b2c", "wf-1", "run-1")
        assert link == "https://cloud.temporal.io/namespaces/my-ns.a1b2c/workflows/wf-1/run-1/history"

    def test_a_local_dev_server_whose_ui_listens_at_port_plus_1000(self):
        with socket.socket() as ui:
            ui.bind(("127.0.0.1", 0))
            ui.listen()
            ui_port = ui.getsockname()[1]
            if ui_port <= 1000:
                pytest.skip("the OS gave a port below 1001")
            assert known_ui_base(f"127.0.0.1:{ui_port - 1000}") == f"http://127.0.0.1:{ui_port}"
        assert known_ui_base(f"127.0.0.1:{ui_port - 1000}") is None  # nothing listens there any more

    def test_any_other_server_is_unknown(self):
        assert known_ui_base("temporal.example.internal:7233") is None
        assert Connection.of("temporal.example.internal:7233", "default", "q").ui_base is None
        assert ui_url(None, "default", "wf-1") is None
        given = Connection.of("temporal.example.internal:7233", "default", "q", ui_url="http://ui.example:8080")
        assert ui_url(given.ui_base, given.namespace, "wf-1") == "http://ui.example:8080/namespaces/default/workflows/wf-1"
