"""The Docker Compose deployment's storage: every worker keeps and reads the runs' big values and
files in one bucket of the SeaweedFS service, with credentials that service accepts, after the
one-shot job created that bucket (no Docker needed: the files are parsed and checked together)."""

from __future__ import annotations

import json
import re

import pytest

from activities.storage import STORAGE_ENV
from activities.storage.backends import S3Location, parse_location
from tests.unit.test_compose import ROOT, as_argv, depends_on, env, load_compose, split_image


@pytest.fixture(scope="module")
def services() -> dict:
    return load_compose()["services"]


def s3_identities(services: dict) -> list[dict]:
    """The identities of the `-s3.config` file the seaweedfs service is given (through its mount)."""
    argv = as_argv(services["seaweedfs"].get("command"))
    config = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("-s3.config="))
    mounts = {m.split(":")[1]: m.split(":")[0] for m in map(str, services["seaweedfs"].get("volumes", []))}
    assert config in mounts, f"the S3 config {config} is not mounted into the seaweedfs service"
    return json.loads((ROOT / mounts[config]).read_text())["identities"]


def s3_port(services: dict) -> str:
    argv = as_argv(services["seaweedfs"].get("command"))
    return next((arg.split("=", 1)[1] for arg in argv if arg.startswith("-s3.port=")), "8333")


def test_seaweedfs_serves_s3_and_keeps_its_data_on_a_volume(services):
    seaweedfs = services["seaweedfs"]
    assert split_image(seaweedfs["image"])[0] == "chrislusf/seaweedfs"
    argv = as_argv(seaweedfs.get("command"))
    assert argv[0] == "server" and "-s3" in argv and "-filer" in argv
    data = [str(volume).split(":")[0] for volume in seaweedfs.get("volumes", []) if str(volume).split(":")[1] == "/data"]
    assert data and data[0] in (load_compose().get("volumes") or {}), (
        "the stored values must survive the container: a named volume at /data, where the image keeps them")
    assert seaweedfs.get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", ["worker", "storage-bucket"])
def test_the_s3_clients_reach_seaweedfs_with_credentials_it_accepts(services, name: str):
    settings = env(services[name])
    endpoint = re.fullmatch(r"http://([\w.-]+):(\d+)", settings.get("AWS_ENDPOINT_URL_S3", ""))
    assert endpoint and endpoint.group(1) == "seaweedfs" and endpoint.group(2) == s3_port(services), settings
    assert "seaweedfs" in depends_on(services[name]) or name == "worker"
    allowed = [identity for identity in s3_identities(services)
               if {"accessKey": settings.get("AWS_ACCESS_KEY_ID"), "secretKey": settings.get("AWS_SECRET_ACCESS_KEY")}
               in identity.get("credentials", [])]
    assert allowed, f"{name}'s AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not an identity of deploy/seaweedfs-s3.json"
    assert {"Read", "Write", "List"} <= set(allowed[0]["actions"]) or "Admin" in allowed[0]["actions"]
    assert settings.get("AWS_REGION")


def test_every_worker_uses_the_bucket_the_job_creates(services):
    worker, job = services["worker"], services["storage-bucket"]
    location = parse_location(env(worker)[STORAGE_ENV])
    assert isinstance(location, S3Location) and location.prefix, "workers share an s3://bucket/prefix storage"
    script = " ".join(as_argv(job.get("entrypoint")) + as_argv(job.get("command")))
    assert f"create-bucket --bucket {location.bucket}" in script
    assert f"head-bucket --bucket {location.bucket} ||" in script, "the job must succeed when the bucket exists"
    assert job.get("restart") == "on-failure", "the job retries until the S3 gateway answers, then stays done"
    assert depends_on(worker).get("storage-bucket") == "service_completed_successfully"
    assert "TFLOW_STORAGE_KEY" not in env(worker), "a key in the compose file would be a key everyone knows"

