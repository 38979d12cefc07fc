"""The S3 backend against a real S3-compatible server (SeaweedFS, the session's `s3_server`; no
Temporal): objects and files round-trip, files stream in bounded memory, racing workers agree on one
signing key, and every failure names the bucket or key and what to check."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.storage import keys as storage_keys
from activities.storage.backends import S3Location, StoredValueError
from activities.storage.s3 import S3Storage
from client.devserver import free_port
from client.s3server import S3Server

FILE_BYTES = 48 * 1024 * 1024 + 5


@pytest.fixture
def aws(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The server's endpoint and credentials, and nothing of the developer's AWS settings."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def store(aws: pytest.MonkeyPatch, s3_server: S3Server) -> S3Storage:
    return S3Storage(S3Location(s3_server.bucket, f"backend-{uuid.uuid4().hex[:10]}"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_values_and_files_round_trip_under_the_prefix(store: S3Storage, s3_server: S3Server, tmp_path: Path):
    store.write_bytes("r/t/outputs/0-a.json", b'"hello"')
    store.write_bytes("r/t/outputs/1-b.json", b"[1]")
    assert store.read_bytes("r/t/outputs/0-a.json") == b'"hello"'
    assert store.count("r/t/outputs") == 2 and store.count("r/other") == 0
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(9 * 1024 * 1024))  # past the multipart threshold
    assert store.write_file("r/t/files/deep/source.bin", source) == source.stat().st_size
    target = tmp_path / "target.bin"
    store.read_to_file("r/t/files/deep/source.bin", target)
    assert sha256(target) == sha256(source)
    head = s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{store.s3.prefix}/r/t/files/deep/source.bin")
    assert head["ContentLength"] == source.stat().st_size


def test_files_move_streamed_in_bounded_memory(store: S3Storage, tmp_path: Path):
    """A 48 MiB file is stored and read back holding a fraction of it in memory (parts of 8 MiB, 4 at a time)."""
    source = tmp_path / "big.bin"
    with open(source, "wb") as out:
        for _ in range(FILE_BYTES >> 20):
            out.write(os.urandom(1 << 20))
        out.write(b"tail!")
    target = tmp_path / "back.bin"
    tracemalloc.start()
    try:
        store.write_file("r/t/files/big.bin", source)
        stored_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        store.read_to_file("r/t/files/big.bin", target)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sha256(target) == sha256(source)
    print(f'peak traced memory: store {stored_peak >> 20} MiB, read {read_peak >> 20} MiB of a {FILE_BYTES >> 20} MiB file')
    assert stored_peak < FILE_BYTES * 0.75 and read_peak < FILE_BYTES * 0.75, (stored_peak, read_peak)


def test_racing_workers_agree_on_one_signing_key(aws: pytest.MonkeyPatch, s3_server: S3Server):
    """Eight workers reaching a new storage at once (each its own client): one key object, used by all."""
    location = S3Location(s3_server.bucket, f"race-{uuid.uuid4().hex[:10]}")
    stores = [S3Storage(location) for _ in range(8)]
    start = threading.Barrier(len(stores))
    keys: list[bytes] = []

    def first_use(store: S3Storage) -> None:
        start.wait()
        keys.append(storage_keys._stored_key(store))

    threads = [threading.Thread(target=first_use, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(keys) == len(stores) and len(set(keys)) == 1, keys
    stored = s3_server.client().get_object(Bucket=s3_server.bucket, Key=f"{location.prefix}/{storage_keys.KEY_FILE}")
    assert stored["Body"].read().strip() == keys[0]


def test_a_missing_object_is_named_with_its_bucket_and_key(store: S3Storage, tmp_path: Path):
    where = f"s3://{store.bucket}/{store.s3.prefix}/r/t/outputs/9-gone.json"
    with pytest.raises(StoredValueError, match=f"^{where}: no such object"):
        store.read_bytes("r/t/outputs/9-gone.json")
    with pytest.raises(StoredValueError, match=f"^{where}: no such object"):
        store.read_to_file("r/t/outputs/9-gone.json", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_wrong_credentials_say_which_variables_to_check(aws: pytest.MonkeyPatch, s3_server: S3Server, tmp_path: Path):
    aws.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    store = S3Storage(S3Location(s3_server.bucket, "denied"))
    with pytest.raises(ApplicationError, match="AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") as raised:
        store.write_bytes("r/t/outputs/0-v.json", b"1")
    assert raised.value.type == "StorageError" and raised.value.non_retryable
    assert f"cannot write s3://{s3_server.bucket}/denied/r/t/outputs/0-v.json" in str(raised.value)
    with pytest.raises(StoredValueError, match="access denied"):
        store.read_bytes("r/t/outputs/0-v.json")


def test_a_missing_bucket_says_to_create_it(aws: pytest.MonkeyPatch, tmp_path: Path):
    store = S3Storage(S3Location(f"absent-{uuid.uuid4().hex[:10]}", "runs"))
    source = tmp_path / "f.txt"
    source.write_text("x")
    with pytest.raises(ApplicationError, match=f"the bucket '{store.bucket}' does not exist at {store.endpoint}: create it"):
        store.write_file("r/t/files/f.txt", source)


def test_an_unreachable_endpoint_is_named(aws: pytest.MonkeyPatch):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    aws.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    store = S3Storage(S3Location("tflow", "runs"))
    started = time.monotonic()
    with pytest.raises(StoredValueError, match=f"cannot reach the S3 endpoint {endpoint}.*AWS_ENDPOINT_URL"):
        store.read_bytes("r/t/outputs/0-v.json")
    assert time.monotonic() - started < 30  # boto3 retries a refused connection a few times, then gives up
