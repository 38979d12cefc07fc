"""Secrets without a server: where a worker finds values (a directory, a YAML/JSON or env file, then
SECRET_NAME in base64), how a task run resolves only its own run's placeholders and masks what it
resolved (JSON-escaped and line by line too), URL redaction in errors, the allow-listed task
environment, the script's file and command, `secret()` in templates and `tflow validate`'s check."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.commands import SCRIPT_FILE, script_command, write_script
from activities.processes import run_supervised
from activities.secrets import worker as task_settings
from activities.secrets.store import SecretStore, check_secrets_path
from activities.secrets.task import TaskSecrets, redact_urls
from temporal_flows.expressions.library import RENDERING_RUN, secret_nonce
from temporal_flows.expressions.templates import ExpressionError, render_string
from tests.support import REPO, cli_env, tflow, write_flow

NONCE = secret_nonce("run-1")


def placeholder(name: str, nonce: str = NONCE) -> str:
    return f"~tflow-secret~{name}~{nonce}~"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- the store -----------------------------------------------------------------------------------


def test_a_directory_of_files_comes_before_the_environment(tmp_path: Path) -> None:
    (tmp_path / "DB").write_text("from-file\n")
    store = SecretStore(tmp_path, {"SECRET_DB": b64("from-env"), "SECRET_ONLY_ENV": b64("env value\nline 2")})
    assert store.lookup("DB") == "from-file"  # one trailing newline dropped (echo > file)
    assert store.lookup("ONLY_ENV") == "env value\nline 2"
    assert store.lookup("NOWHERE") is None
    assert str(tmp_path / "NOWHERE") in store.places("NOWHERE") and "SECRET_NOWHERE" in store.places("NOWHERE")


@pytest.mark.parametrize(("name", "text"), [
    ("secrets.yaml", "API: 'a: b'\nPORT: 5432\nFLAG: true\nEMPTY:\n"),
    ("secrets.json", '{"API": "a: b", "PORT": 5432, "FLAG": true}'),
    ("secrets.env", "# comment\nexport API='a: b'\nPORT=5432\n\nFLAG=\"true\"\nnot a pair\n"),
])
def test_a_yaml_json_or_env_file(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    store = SecretStore(path, {})
    assert (store.lookup("API"), store.lookup("PORT"), store.lookup("FLAG")) == ("a: b", "5432", "true")
    assert store.lookup("EMPTY") is None and store.lookup("MISSING") is None


def test_a_changed_file_is_read_again_and_bad_values_are_named_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("A: one\n")
    store = SecretStore(path, {"SECRET_BAD": "not base64!"})
    assert store.lookup("A") == "one"
    path.write_text("A: two, longer\n")
    assert store.lookup("A") == "two, longer"
    with pytest.raises(ApplicationError, match="SECRET_BAD is not valid base64") as bad:
        store.lookup("BAD")
    assert bad.value.type == "SecretInvalid" and "not base64!" not in bad.value.message
    path.write_text("A: [1, 2]\n")
    with pytest.raises(ApplicationError, match="the value of A must be text"):
        store.lookup("A")
    assert check_secrets_path(tmp_path / "absent") is not None and check_secrets_path(path) is None


# -- one task run --------------------------------------------------------------------------------


def test_only_this_runs_placeholders_are_resolved(tmp_path: Path) -> None:
    store = SecretStore(None, {"SECRET_TOKEN": b64("s3cr3t-value")})
    secrets = TaskSecrets((), NONCE, store)
    assert secrets.resolve(f"curl -H 'Authorization: {placeholder('TOKEN')}' x") == "curl -H 'Authorization: s3cr3t-value' x"
    assert secrets.resolve_data({"a": [placeholder("TOKEN"), 3]}) == {"a": ["s3cr3t-value", 3]}
    for forged in (placeholder("TOKEN", ""), placeholder("TOKEN", secret_nonce("run-2"))):
        with pytest.raises(ApplicationError) as refused:
            secrets.resolve(f"echo {forged}")
        assert refused.value.type == "SecretRefused" and "secret('TOKEN')" in refused.value.message
    with pytest.raises(ApplicationError) as missing:
        secrets.resolve(placeholder("OTHER"))
    assert missing.value.type == "SecretNotFound" and "SECRET_OTHER" in missing.value.message


def test_resolved_and_given_values_are_masked_in_every_form() -> None:
    value = 'pa"ss\\word\nsecond-line'
    store = SecretStore(None, {"SECRET_P": b64(value)})
    secrets = TaskSecrets(["input-secret", "abc"], NONCE, store)
    assert secrets.mask("abc input-secret") == "abc ****"  # 3 characters: too short to mask
    secrets.resolve(placeholder("P"))
    assert secrets.mask(f"raw {value} end") == "raw **** end"
    assert secrets.mask('json "pa\\"ss\\\\word\\nsecond-line"') == 'json "****"'
    assert secrets.mask("a line: second-line") == "a line: ****"
    assert secrets.mask_data({"k": ["input-secret"], "input-secret": 1}) == {"k": ["****"], "****": 1}


def test_an_error_leaves_masked_redacted_and_without_its_cause() -> None:
    secrets = TaskSecrets(["hunter2-pass"])
    try:
        try:
            raise OSError("hunter2-pass in the cause")
        except OSError as cause:
            raise ApplicationError("GET https://h/p?token=hunter2-pass failed: hunter2-pass", {"d": "hunter2-pass"},
                                   type="X", non_retryable=True) from cause
    except ApplicationError as error:
        masked = secrets.masked_error(error)
    assert masked.message == "GET https://h/p?**** failed: ****"
    assert masked.details == ({"d": "****"},) and masked.type == "X" and masked.non_retryable
    assert masked.__cause__ is None


@pytest.mark.parametrize(("text", "expected"), [
    ("Cannot reach h:1 (GET https://h:8/p/x?token=abc&b=2): refused", "Cannot reach h:1 (GET https://h:8/p/x?****): refused"),
    ("HTTP 500 from GET http://127.0.0.1:5/p?t=1", "HTTP 500 from GET http://127.0.0.1:5/p?****"),
    ("see http://user:pw@h/p#access_token=x.", "see http://user:****@h/p#****."),
    ("no URL ?a=b, https://h/p stays", "no URL ?a=b, https://h/p stays"),
])
def test_urls_in_errors_lose_their_query_and_password(text: str, expected: str) -> None:
    assert redact_urls(text) == expected


# -- the task's environment and script -----------------------------------------------------------


def test_the_task_environment_is_allow_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"TEMPORAL_API_KEY": "k", "SECRET_X": "eA==", "LC_ALL": "C", "AWS_REGION": "eu", "TZ": "UTC"}.items():
        monkeypatch.setenv(name, value)
    try:
        task_settings.configure(None, [])
        env = task_settings.task_environment({"OWN": 1, "PATH": "/only/mine"})
        assert env["OWN"] == "1" and env["PATH"] == "/only/mine" and env["LC_ALL"] == "C" and env["TZ"] == "UTC"
        assert not {"TEMPORAL_API_KEY", "SECRET_X", "AWS_REGION"} & set(env)
        task_settings.configure(None, ["AWS_*"])
        assert task_settings.task_environment()["AWS_REGION"] == "eu"
        monkeypatch.setenv(task_settings.PASS_ENV_ENV, "TEMPORAL_API_KEY, AWS_*")
        task_settings.configure()
        assert {"TEMPORAL_API_KEY", "AWS_REGION"} <= set(task_settings.task_environment())
    finally:
        task_settings.configure(None, [])


def test_the_script_goes_to_a_private_file_and_the_interpreter_gets_its_name(tmp_path: Path) -> None:
    first = write_script(str(tmp_path), "echo one")
    second = write_script(str(tmp_path), "echo two")  # the name is taken (a shared working directory)
    assert first == SCRIPT_FILE and second != first and second.startswith(SCRIPT_FILE)
    for name, text in ((first, "echo one"), (second, "echo two")):
        assert (tmp_path / name).read_text() == text and (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert script_command(["/bin/sh", "-c"], first) == ["/bin/sh", "-c", ". ./.tflow-script"]
    assert script_command(["bash", "-euo", "pipefail", "-c"], first) == ["bash", "-euo", "pipefail", "./.tflow-script"]
    assert script_command(["node", "-e"], first) == ["node", "./.tflow-script"]
    assert script_command(["pwsh", "-File"], first) == ["pwsh", "-File", "./.tflow-script"]


async def test_output_lines_are_masked_before_callbacks_and_tails() -> None:
    seen: list[str] = []
    outcome = await run_supervised(["/bin/sh", "-c", "echo 'a hunter2-pass b'; echo hunter2-pass >&2; exit 3"],
                                   on_stdout=seen.append, mask=TaskSecrets(["hunter2-pass"]).mask, inline_sh=True)
    assert seen == ["a **** b"] and outcome.stdout_tail == "a **** b" and outcome.stderr_tail == "****"


# -- templates and validation --------------------------------------------------------------------


def test_secret_renders_a_placeholder_and_refuses_bad_names() -> None:
    assert render_string("{{ secret('API_TOKEN') }}", {}) == "~tflow-secret~API_TOKEN~~"  # outside any run: no tag
    assert secret_nonce("r") == secret_nonce("r") != secret_nonce("s") and len(secret_nonce("r")) == 16
    token = RENDERING_RUN.set("run-1")  # a worker's render child process, rendering for run-1
    try:
        assert render_string("{{ secret('API_TOKEN') }}", {}) == placeholder("API_TOKEN")
    finally:
        RENDERING_RUN.reset(token)
    for bad in ("'a-b'", "'1X'", "42", "none"):
        with pytest.raises(ExpressionError, match="secret"):
            render_string(f"{{{{ secret({bad}) }}}}", {})


def test_tflow_validate_warns_of_a_missing_secret_and_refuses_a_bad_name(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, """
        id: uses_secrets
        namespace: t
        tasks:
          - id: call
            type: commands
            env: {A: "{{ secret('FOUND_HERE') }}"}
            commands: ["echo {{ secret('MISSING_ONE') }}"]
    """)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "FOUND_HERE").write_text("x")
    env = {name: value for name, value in cli_env(SECRET_FOUND_HERE=b64("v")).items() if name != "SECRET_MISSING_ONE"}
    done = subprocess.run(tflow("validate", str(flow)), cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"{flow}: valid" in done.stdout, done.stderr
    [warning] = done.stderr.strip().splitlines()
    assert warning.startswith(f"{flow}:7:") and "warning: task `call`, `commands`: secret `MISSING_ONE` is not set" in warning
    assert "SECRET_MISSING_ONE (base64)" in warning and "--secrets" in warning
    with_dir = subprocess.run(tflow("validate", str(flow), "--secrets", str(tmp_path / "dir")), cwd=REPO,
                              env={k: v for k, v in env.items() if k != "SECRET_FOUND_HERE"}, capture_output=True, text=True, timeout=60)
    assert with_dir.returncode == 0 and "FOUND_HERE" not in with_dir.stderr and "MISSING_ONE" in with_dir.stderr

    flow.write_text(flow.read_text().replace("MISSING_ONE", "bad-name"))
    bad = subprocess.run(tflow("validate", str(flow)), cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and f"{flow}:7:" in bad.stderr and "invalid secret name 'bad-name'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


async def test_no_spawned_command_line_holds_the_script_or_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What `ps` shows every user is each process's argv: the script and its secrets reach the
    interpreter by file (`commands` and `script` tasks), for Popen and for the shell the supervisor forks."""
    from temporalio.testing import ActivityEnvironment

    from activities.api import CommandsRequest, ScriptRequest
    from activities.commands import run_commands
    from activities.script import run_script

    seen: list[list[str]] = []
    real_init = subprocess.Popen.__init__

    def recording_init(self: subprocess.Popen[bytes], args: list[str], *rest: object, **kwargs: object) -> None:
        seen.append([str(arg) for arg in args])
        real_init(self, args, *rest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "__init__", recording_init)
    monkeypatch.setenv("SECRET_TOKEN", b64("tok-in-the-env"))
    environment = ActivityEnvironment()
    token = placeholder("TOKEN", secret_nonce(environment.info.workflow_run_id))
    out = tmp_path / "out"
    commands = CommandsRequest(run_id="r", task_id="t", task_run_id="tr", env={"T": token},
                               commands=[f"# marker-in-the-script {token}", f'printf %s "$T" > {out}'])
    assert (await environment.run(run_commands, commands)).exit_code == 0
    assert out.read_text() == "tok-in-the-env"
    script = ScriptRequest(run_id="r", task_id="p", task_run_id="tp", script=f"# marker-in-the-script\nprint('{token}')")
    assert [line["message"] for line in (await environment.run(run_script, script)).log_lines] == ["****"]
    assert len(seen) >= 2
    for argv in seen:
        assert not any("marker-in-the-script" in arg or "tok-in-the-env" in arg or "tflow-secret" in arg for arg in argv), argv
