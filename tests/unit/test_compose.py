"""The Docker Compose deployment (docker-compose.yml, Dockerfile, deploy/) is wired consistently.

No Docker needed: the files are parsed and checked against each other and against
temporal_flows.metadata. The search-attribute registration script runs against a stub `temporal`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from temporal_flows import metadata

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
REGISTER_SCRIPT = ROOT / "deploy" / "register-search-attributes.sh"

SERVICES = ("postgresql", "temporal", "temporal-admin-tools", "temporal-ui", "worker")


# ---------------------------------------------------------------------------------------------
# helpers: the shapes compose allows for environment, ports, build, depends_on, durations


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services() -> dict:
    return load_compose()["services"]


def env(service: dict) -> dict[str, str]:
    """`environment:` as a dict, from the mapping or the list (`KEY=value`) form."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def published_ports(service: dict) -> list[tuple[str | None, str]]:
    """(host port or None, container port) for every `ports:` entry, short or long syntax."""
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append((None if published is None else str(published), str(entry["target"])))
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            result.append((None, parts[0]))
        else:
            result.append((parts[-2], parts[-1]))
    return result


def depends_on(service: dict) -> dict[str, str]:
    """`depends_on:` as {service: condition}, from the list or the long form."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def as_argv(value) -> list[str]:
    """`command:`/`entrypoint:` as an argv list (a string is split on whitespace)."""
    if value is None:
        return []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def seconds(duration: str | int) -> float:
    """A compose duration such as `90s`, `1m30s` or `2m` in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def split_image(image: str) -> tuple[str, str | None]:
    """`repo[:tag][@digest]` -> (repo, tag); a registry port (`host:5000/x`) is not a tag."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, None


def address(value: str) -> tuple[str, str]:
    host, _, port = value.rpartition(":")
    return host, port


def build_context_and_dockerfile(service: dict) -> tuple[Path, Path]:
    build = service["build"]
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    context_dir = (ROOT / context).resolve()
    return context_dir, context_dir / dockerfile


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


@pytest.fixture(scope="module")
def dockerfile(services) -> list[tuple[str, str]]:
    _, path = build_context_and_dockerfile(services["worker"])
    assert path.is_file(), f"worker builds from {path}, which does not exist"
    return dockerfile_instructions(path)


def exec_form(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    """The last ENTRYPOINT/CMD, which must use the exec (JSON) form so signals reach tflow."""
    values = [args for kw, args in instructions if kw == keyword]
    assert values, f"Dockerfile has no {keyword}"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"{keyword} must use the exec form, e.g. {keyword} [\"tflow\"]"
    return parsed


# ---------------------------------------------------------------------------------------------
# services and their wiring


def test_all_services_exist(services):
    missing = [name for name in SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services {missing}"


def test_postgresql_has_credentials_volume_and_healthcheck(services):
    pg = services["postgresql"]
    assert split_image(pg["image"])[0].endswith("postgres")
    assert env(pg).get("POSTGRES_USER") and env(pg).get("POSTGRES_PASSWORD")
    assert any(str(v).endswith("/var/lib/postgresql/data") for v in pg.get("volumes", [])), (
        "postgres data must live on a volume"
    )
    test = pg.get("healthcheck", {}).get("test")
    assert test and "pg_isready" in " ".join(as_argv(test))


def test_temporal_uses_the_postgresql_service(services):
    temporal, pg = env(services["temporal"]), env(services["postgresql"])
    assert split_image(services["temporal"]["image"])[0] == "temporalio/auto-setup"
    assert temporal.get("DB") == "postgres12"
    assert temporal.get("DB_PORT") == "5432"
    assert temporal.get("POSTGRES_USER") == pg["POSTGRES_USER"]
    assert temporal.get("POSTGRES_PWD") == pg["POSTGRES_PASSWORD"]
    seeds = [s.strip() for s in temporal.get("POSTGRES_SEEDS", "").split(",") if s.strip()]
    assert seeds and all(s in services and services[s] is services["postgresql"] for s in seeds), (
        f"POSTGRES_SEEDS={seeds} must name the postgresql service"
    )
    assert depends_on(services["temporal"]).get("postgresql") == "service_healthy"


def test_temporal_publishes_7233(services):
    assert ("7233", "7233") in published_ports(services["temporal"])


def test_ui_publishes_8080_and_talks_to_temporal(services):
    ui = services["temporal-ui"]
    assert split_image(ui["image"])[0] == "temporalio/ui"
    assert ("8080", "8080") in published_ports(ui)
    assert env(ui).get("TEMPORAL_ADDRESS") == "temporal:7233"
    assert env(ui).get("TEMPORAL_CORS_ORIGINS")
    assert "temporal" in depends_on(ui)


def test_worker_is_built_from_a_dockerfile_that_installs_the_project(services, dockerfile):
    context, _ = build_context_and_dockerfile(services["worker"])
    assert context == ROOT, "the worker image is built from the project root"
    froms = [args for kw, args in dockerfile if kw == "FROM"]
    assert froms and split_image(froms[-1].split()[0]) == ("python", "3.11-slim")
    runs = " && ".join(args for kw, args in dockerfile if kw == "RUN")
    assert re.search(r"pip install (?:[-\w=]+ )*\.(?:\s|$|&)", runs), (
        "the Dockerfile must `pip install .`"
    )
    assert any(kw == "COPY" and args.split()[0] == "." for kw, args in dockerfile), (
        "the project sources must be copied into the image"
    )
    users = [args for kw, args in dockerfile if kw == "USER"]
    assert users and users[-1] not in ("root", "0"), "the worker must not run as root"
    assert "tflow" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore drops `path`: patterns are anchored at the context root unless
    they start with `**/`; a matched directory drops its contents; `!` re-includes; last wins."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    parts = Path(path).parts
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        starts = range(len(parts)) if pattern.startswith("**/") else [0]
        pattern = pattern.removeprefix("**/")
        prefixes = ("/".join(parts[i:j]) for i in starts for j in range(i + 1, len(parts) + 1))
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_pip_install_needs():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [pkg.replace(".", "/") + "/__init__.py" for pkg in setuptools["packages"]]
    for needed in ("pyproject.toml", *packages):
        assert not dockerignored(needed), f".dockerignore drops {needed}; `pip install .` needs it"
    for junk in (".venv/bin/python", ".git/HEAD", "temporal_flows/__pycache__/x.pyc"):
        assert dockerignored(junk), f".dockerignore should drop {junk}"


def test_dockerfile_runs_tflow_worker_in_the_flows_directory(services, dockerfile):
    assert exec_form(dockerfile, "ENTRYPOINT") == ["tflow"]
    assert exec_form(dockerfile, "CMD") == ["worker"]
    workdirs = [args for kw, args in dockerfile if kw == "WORKDIR"]
    mounts = [str(v).split(":") for v in services["worker"].get("volumes", [])]
    assert workdirs and [m for m in mounts if m[1] == workdirs[-1]], (
        "flows must be mounted at the image's working directory"
    )


def test_worker_connects_to_the_temporal_service(services):
    worker = env(services["worker"])
    host, port = address(worker.get("TEMPORAL_ADDRESS", ""))
    assert host == "temporal" and host in services
    assert port == "7233" and any(c == port for _, c in published_ports(services["temporal"]))
    assert worker.get("TEMPORAL_NAMESPACE") == metadata.DEFAULT_NAMESPACE
    assert worker.get("TFLOW_TASK_QUEUE") == metadata.DEFAULT_TASK_QUEUE
    assert as_argv(services["worker"].get("command")) == ["worker"]
    assert "temporal" in depends_on(services["worker"])


def test_worker_mounts_examples_read_only(services):
    mounts = [str(v).split(":") for v in services["worker"].get("volumes", [])]
    assert ["./examples", "/flows", "ro"] in mounts


def test_worker_is_scalable(services):
    worker = services["worker"]
    assert "container_name" not in worker, "container_name prevents --scale worker=N"
    assert not worker.get("ports"), "published host ports prevent --scale worker=N"
    assert worker.get("restart") in ("always", "unless-stopped", "on-failure")


def test_worker_gets_time_to_drain(services):
    worker = services["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert seconds(worker.get("stop_grace_period", "10s")) >= 30, (
        "the default 10 s grace period kills running tasks before they can finish"
    )


def test_every_image_is_pinned(services, dockerfile):
    images = {name: s["image"] for name, s in services.items() if "image" in s}
    froms = [args.split()[0] for kw, args in dockerfile if kw == "FROM"]
    images.update({f"Dockerfile FROM #{i}": image for i, image in enumerate(froms, 1)})
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
    for where, image in images.items():
        _, tag = split_image(image)
        assert tag and tag != "latest", f"{where}: image {image!r} must be pinned to a version"


# ---------------------------------------------------------------------------------------------
# search attributes


def registered_in_compose(services) -> dict[str, str]:
    admin = services["temporal-admin-tools"]
    argv = as_argv(admin.get("entrypoint")) + as_argv(admin.get("command"))
    pairs = [arg.split("=", 1) for arg in argv if re.fullmatch(r"\w+=\w+", arg)]
    return dict(pairs)


def test_compose_registers_exactly_the_metadata_search_attributes(services):
    assert registered_in_compose(services) == metadata.SEARCH_ATTRIBUTES


def test_registration_job_runs_the_mounted_script_against_temporal(services):
    admin = services["temporal-admin-tools"]
    assert split_image(admin["image"])[0] == "temporalio/admin-tools"
    assert "temporal" in depends_on(admin)
    assert env(admin).get("TEMPORAL_ADDRESS") == "temporal:7233"
    assert admin.get("restart") == "on-failure", "a one-shot job must not restart after success"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in map(str, admin.get("volumes", []))}
    script_in_container = next(a for a in as_argv(admin.get("entrypoint")) if a.endswith(".sh"))
    assert (ROOT / mounts[script_in_container]).resolve() == REGISTER_SCRIPT
    assert REGISTER_SCRIPT.is_file()


def test_admin_tools_and_server_versions_match(services):
    server = split_image(services["temporal"]["image"])[1]
    admin = split_image(services["temporal-admin-tools"]["image"])[1]
    assert admin.split("-")[0] == server


# ---------------------------------------------------------------------------------------------
# the registration script, against a stub `temporal` CLI

CREATE = "operator search-attribute create --namespace default"

STUB = r"""#!/bin/sh
# A fake `temporal` CLI: unreachable for the first $STUB_DOWN calls, then a server with a
# search-attribute table kept in $STUB_DIR/attrs ("Name Type" lines).
echo "$*" >> "$STUB_DIR/calls"
n=$(cat "$STUB_DIR/count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$STUB_DIR/count"
[ "$n" -gt "${STUB_DOWN:-0}" ] || { echo "connection refused" >&2; exit 1; }
case "$1 $2 $3" in
  "operator namespace describe") exit 0 ;;
  "operator search-attribute list")
    printf '  Name  Type\n'; cat "$STUB_DIR/attrs" 2>/dev/null; exit 0 ;;
  "operator search-attribute create")
    shift 3
    while [ "$#" -gt 0 ]; do
      case "$1" in --name) name=$2 ;; --type) type=$2 ;; esac; shift
    done
    echo "  $name  $type" >> "$STUB_DIR/attrs"; exit 0 ;;
esac
exit 3
"""


def run_registration(tmp_path: Path, *pairs: str, down: int = 0, attrs: str = "", timeout: int = 5):
    if shutil.which("sh") is None:
        pytest.skip("no /bin/sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "temporal"
    stub.write_text(STUB)
    stub.chmod(0o755)
    (tmp_path / "attrs").write_text(attrs)
    environ = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        STUB_DIR=str(tmp_path),
        STUB_DOWN=str(down),
        REGISTER_INTERVAL="0",
        REGISTER_TIMEOUT=str(timeout),
        TEMPORAL_NAMESPACE="default",
    )
    proc = subprocess.run(
        ["sh", str(REGISTER_SCRIPT), *pairs],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return proc, [c for c in calls if "search-attribute create" in c]


def test_registration_script_waits_for_the_server_then_creates_each_attribute(tmp_path, services):
    pairs = [f"{k}={v}" for k, v in registered_in_compose(services).items()]
    proc, creates = run_registration(tmp_path, *pairs, down=3)
    assert proc.returncode == 0, proc.stderr
    assert creates == [
        f"{CREATE} --name {n} --type {t}" for n, t in metadata.SEARCH_ATTRIBUTES.items()
    ]


def test_registration_script_is_idempotent(tmp_path):
    proc, creates = run_registration(
        tmp_path, "TflowFlowId=Keyword", "Other=KeywordList", attrs="  TflowFlowId  Keyword\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert creates == [f"{CREATE} --name Other --type KeywordList"]


def test_registration_script_does_not_mistake_another_type_for_the_requested_one(tmp_path):
    proc, creates = run_registration(tmp_path, "Tags=Keyword", attrs="  Tags  KeywordList\n")
    assert proc.returncode == 0, proc.stderr
    assert creates == [f"{CREATE} --name Tags --type Keyword"]


def test_registration_script_gives_up_when_the_server_never_answers(tmp_path):
    proc, creates = run_registration(tmp_path, "TflowFlowId=Keyword", down=10**6, timeout=0)
    assert proc.returncode == 1 and "did not answer" in proc.stderr
    assert creates == []


def test_registration_script_rejects_malformed_pairs(tmp_path):
    proc, _ = run_registration(tmp_path, "TflowFlowId")
    assert proc.returncode == 2 and "NAME=TYPE" in proc.stderr
