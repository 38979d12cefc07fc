"""An S3-compatible bucket as the run's storage: `tflow worker --storage s3://bucket/prefix`, so
workers on machines that share no disk read each other's stored values and files.

boto3 reads the usual AWS settings: the endpoint from `AWS_ENDPOINT_URL_S3`, else
`AWS_ENDPOINT_URL` (unset: AWS itself; set: any S3-compatible server such as SeaweedFS or MinIO,
addressed path-style, `http://host:port/bucket/key`, with checksums only where S3 requires them),
credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (or a profile, an instance role...),
the region from `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1. The bucket must exist.
Files move through boto3's managed transfers (multipart, streamed from and to disk); boto3 retries
throttling and dropped connections itself. A failure names the bucket, the key and what to check.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
from boto3.exceptions import Boto3Error, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, NoCredentialsError

from activities.storage.backends import S3Location, StorageBackend, StoredValueError, storage_error

ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""Where boto3 finds an S3-compatible server's URL, the first set wins."""
DEFAULT_REGION = "us-east-1"
PART_BYTES = 8 << 20
TRANSFERS = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=4)
"""Files past 8 MiB move in 8 MiB parts, 4 at a time: a file's transfer holds ~32 MiB at most."""
_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_TAKEN = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
"""A conditional create lost to another worker's."""


def endpoint_setting() -> str | None:
    """The S3-compatible endpoint from the environment (None: AWS's own)."""
    return next((os.environ[name] for name in ENDPOINT_ENVS if os.environ.get(name)), None)


def make_client() -> object:
    """An S3 client from the environment's AWS settings (thread-safe; one per worker process)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    options: dict[str, object] = {
        "connect_timeout": 10, "read_timeout": 60, "retries": {"mode": "standard", "max_attempts": 5},
    }
    if endpoint_setting():  # S3-compatible servers: no bucket sub-domains, no optional checksum trailers
        options.update(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                       response_checksum_validation="when_required")
    return boto3.session.Session(region_name=region).client("s3", config=Config(**options))


class S3Storage(StorageBackend):
    """Objects under `s3://bucket/prefix/`."""

    def __init__(self, location: S3Location, client: object | None = None) -> None:
        self.bucket = location.bucket
        self.s3 = location
        self.location = str(location)
        self.client = client or make_client()
        self.endpoint = self.client.meta.endpoint_url  # type: ignore[attr-defined]

    def where(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.s3.key(relative)}"

    def write_bytes(self, relative: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.s3.key(relative), Body=data)  # type: ignore[attr-defined]
        except (BotoCoreError, ClientError) as error:
            raise storage_error(f"cannot write {self.where(relative)}: {self.explain(error)}") from None

    def write_file(self, relative: str, source: Path) -> int:
        try:
            size = source.stat().st_size
            self.client.upload_file(str(source), self.bucket, self.s3.key(relative), Config=TRANSFERS)  # type: ignore[attr-defined]
        except OSError as error:
            raise storage_error(f"cannot read {source} to store it: {error.strerror or error}") from None
        except (BotoCoreError, Boto3Error, ClientError) as error:
            raise storage_error(f"cannot store {source} as {self.where(relative)}: {self.explain(error)}") from None
        return size

    def read_bytes(self, relative: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.s3.key(relative))  # type: ignore[attr-defined]
            return response["Body"].read()
        except (BotoCoreError, ClientError) as error:
            raise StoredValueError(f"{self.where(relative)}: {self.explain(error)}") from None

    def read_to_file(self, relative: str, target: Path) -> None:
        """boto3 downloads into a temporary file beside `target`, renamed when complete."""
        try:
            self.client.download_file(self.bucket, self.s3.key(relative), str(target), Config=TRANSFERS)  # type: ignore[attr-defined]
        except OSError as error:
            raise StoredValueError(f"cannot write {target}: {error.strerror or error}") from None
        except (BotoCoreError, Boto3Error, ClientError) as error:
            raise StoredValueError(f"{self.where(relative)}: {self.explain(error)}") from None

    def count(self, folder: str) -> int:
        pages = self.client.get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
            Bucket=self.bucket, Prefix=self.s3.key(folder) + "/", Delimiter="/")
        try:
            return sum(page.get("KeyCount", 0) for page in pages)
        except (BotoCoreError, ClientError) as error:
            raise storage_error(f"cannot list {self.where(folder)}/: {self.explain(error)}") from None

    def create_once(self, relative: str, data: bytes) -> None:
        """A conditional put (`If-None-Match: *`) after a look: when two workers race, S3 keeps the
        first and refuses the second, which then reads the first's."""
        key = self.s3.key(relative)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)  # type: ignore[attr-defined]
            return
        except ClientError as error:
            if _code(error) not in _MISSING:
                raise storage_error(f"cannot look up {self.where(relative)}: {self.explain(error)}") from None
        except BotoCoreError as error:
            raise storage_error(f"cannot look up {self.where(relative)}: {self.explain(error)}") from None
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")  # type: ignore[attr-defined]
        except ClientError as error:
            if _code(error) not in _TAKEN:
                raise storage_error(f"cannot create {self.where(relative)}: {self.explain(error)}") from None
        except BotoCoreError as error:
            raise storage_error(f"cannot create {self.where(relative)}: {self.explain(error)}") from None

    def explain(self, error: Exception) -> str:
        """What went wrong, in words, and what to check."""
        if isinstance(error, S3UploadFailedError) and isinstance(error.__context__, ClientError):
            error = error.__context__
        endpoint = self.endpoint
        if isinstance(error, NoCredentialsError):
            return "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        if isinstance(error, BotoConnectionError):
            return (f"cannot reach the S3 endpoint {endpoint} ({error}); check AWS_ENDPOINT_URL / "
                    "AWS_ENDPOINT_URL_S3 and that the server is running")
        if not isinstance(error, ClientError):
            return f"{type(error).__name__}: {error}"
        code = _code(error)
        if code in _MISSING:
            return "no such object (deleted, or stored under another bucket or prefix?)"
        if code == "NoSuchBucket":
            return (f"the bucket {self.bucket!r} does not exist at {endpoint}: create it, or check the storage "
                    "setting (--storage / $TFLOW_STORAGE) and AWS_ENDPOINT_URL")
        if code in _DENIED:
            return (f"access denied ({code}) at {endpoint}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and "
                    f"that they may read and write s3://{self.bucket}")
        message = error.response.get("Error", {}).get("Message") or str(error)
        return f"{code} at {endpoint}: {message}"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
