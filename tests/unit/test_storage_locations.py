"""Choosing the storage backend from `--storage` / `$TFLOW_STORAGE` (no server): a directory or
`s3://bucket/prefix`, anything else refused with a message naming what is wrong; an S3 backend takes
its endpoint, region and addressing from the usual AWS variables."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from activities import storage
from activities.storage.backends import LocalStorage, S3Location, StorageLocationError, parse_location, safe_relative
from activities.storage.s3 import S3Storage
from client.worker import storage_root
from tests.support import REPO, cli_env, tflow

AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS setting of the developer's leaks in (no config or credentials file either)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return monkeypatch


@pytest.fixture
def restore_settings():
    previous = storage._settings
    yield
    storage._settings = previous


@pytest.mark.parametrize("text, bucket, prefix", [
    ("s3://tflow", "tflow", ""),
    ("s3://tflow/", "tflow", ""),
    ("s3://tflow/runs", "tflow", "runs"),
    ("s3://my.bucket-1/team/a/", "my.bucket-1", "team/a"),
    ("S3://tflow//runs//", "tflow", "runs"),  # the scheme in any case; outer slashes dropped
])
def test_s3_urls_name_a_bucket_and_a_prefix(text: str, bucket: str, prefix: str):
    location = parse_location(text)
    assert location == S3Location(bucket, prefix)
    assert location.key("r/t/outputs/0-v.json") == (f"{prefix}/r/t/outputs/0-v.json" if prefix else "r/t/outputs/0-v.json")


@pytest.mark.parametrize("text, says", [
    ("s3://", "is not an S3 bucket name"),
    ("s3:///runs", "is not an S3 bucket name"),
    ("s3://Upper/runs", "is not an S3 bucket name"),
    ("s3://ab", "is not an S3 bucket name"),
    ("s3://under_score", "is not an S3 bucket name"),
    ("s3://a..b/x", "is not an S3 bucket name"),
    ("s3://tflow/a/../b", "has an empty, '.' or '..' part"),
    ("s3://tflow/a//b", "has an empty, '.' or '..' part"),
    ("gs://tflow/runs", "only s3:// URLs and directories"),
    ("https://s3.example.com/tflow", "set AWS_ENDPOINT_URL"),
    ("   ", "the storage is empty"),
])
def test_anything_else_that_looks_like_a_url_is_refused_saying_why(text: str, says: str):
    with pytest.raises(StorageLocationError, match=says.replace(".", r"\.")):
        parse_location(text)


def test_a_directory_is_a_local_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_settings):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_location("~/data") == tmp_path / "data"
    assert parse_location("relative/dir") == Path("relative/dir")
    backend = storage.open_storage(tmp_path / "root")
    assert isinstance(backend, LocalStorage) and (tmp_path / "root").is_dir()  # created
    assert backend.location == str(tmp_path / "root")
    assert storage.configure(str(tmp_path / "root")).root == str(tmp_path / "root")


def test_object_names_never_leave_the_root():
    assert safe_relative("run/task/files/a/b.csv") and safe_relative(".tflow-storage-key")
    for name in ("", "/etc/passwd", "a/../../b", "a/./b", "a//b", "a/", "..", "a\\..\\b"):
        assert not safe_relative(name), name


def test_an_s3_storage_uses_the_aws_variables(aws: pytest.MonkeyPatch, restore_settings):
    aws.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    aws.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8333")  # the S3-specific one wins
    aws.setenv("AWS_REGION", "eu-west-3")
    backend = storage.configure("s3://tflow/runs").backend
    assert isinstance(backend, S3Storage) and backend.location == "s3://tflow/runs"
    assert backend.endpoint == "http://127.0.0.1:8333"
    assert backend.client.meta.region_name == "eu-west-3"
    assert backend.client.meta.config.s3["addressing_style"] == "path"  # no bucket sub-domain on a custom server
    assert backend.where("r/t/outputs/0-v.json") == "s3://tflow/runs/r/t/outputs/0-v.json"
    assert storage.configure("s3://tflow/runs", threshold=10).backend is backend  # one client per location
    assert storage.configure("s3://tflow/other").backend is not backend


def test_without_an_endpoint_an_s3_storage_is_aws_itself(aws: pytest.MonkeyPatch):
    aws.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    backend = S3Storage(S3Location("tflow"))
    assert backend.endpoint == "https://s3.ap-south-1.amazonaws.com"
    assert (backend.client.meta.config.s3 or {}).get("addressing_style") != "path"
    assert backend.where(".tflow-storage-key") == "s3://tflow/.tflow-storage-key"


def test_the_worker_keeps_an_s3_url_as_written(monkeypatch: pytest.MonkeyPatch):
    assert storage_root("s3://tflow/runs") == "s3://tflow/runs"  # not a Path, which would fold `//`
    monkeypatch.setenv(storage.STORAGE_ENV, "s3://tflow/from-env")
    assert storage_root() == "s3://tflow/from-env"


def test_tflow_worker_refuses_a_storage_it_cannot_use(tmp_path: Path):
    for given in (["--storage", "gs://tflow/runs"], []):
        env = cli_env(TFLOW_HOME=str(tmp_path), TFLOW_STORAGE="s3://Bad_Bucket")
        done = subprocess.run(tflow("worker", "--address", "127.0.0.1:9", *given), cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "--storage:" in done.stderr and "Traceback" not in done.stderr
        assert ("only s3:// URLs" if given else "'Bad_Bucket' is not an S3 bucket name") in done.stderr
