"""Where the run's storage keeps its objects: a local directory (a mount every worker shares works
too) or an S3-compatible bucket (`activities.storage.s3`), behind one small interface, so storing a
value, reading one, keeping output files and staging input files are written once
(`activities.storage`).

An object is named by a relative path (`<run>/<task run>/outputs/<n>-<name>.json`); a backend maps
it into its root (a directory, or `s3://bucket/prefix/`). Every call blocks: callers run them off
the event loop. A read that fails raises `StoredValueError` naming the object and what to check; a
write that fails raises a non-retryable `StorageError` the same way.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

S3_SCHEME = "s3://"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
"""S3's bucket naming rules (3-63 characters: lower-case letters, digits, dots and hyphens)."""


class StoredValueError(Exception):
    """A reference that cannot be read; the message names the object and what to check."""


class StorageLocationError(ValueError):
    """`--storage` / `$TFLOW_STORAGE` is neither a directory nor a valid `s3://bucket/prefix` URL."""


def storage_error(message: str) -> ApplicationError:
    """A storage write that failed: the task fails for good, saying what to check."""
    return ApplicationError(message, type="StorageError", non_retryable=True)


def safe_relative(relative: str) -> bool:
    """True for a relative object name that stays inside any root: no empty, `.` or `..` part, no
    leading `/`, no backslash (S3 servers backed by a file tree may resolve those like a path)."""
    if not relative or relative.startswith("/") or "\\" in relative:
        return False
    return all(part not in ("", ".", "..") for part in relative.split("/"))


class StorageBackend(ABC):
    """One storage root: the few operations the run's storage needs, all blocking."""

    location: str
    """The root as the user wrote it, normalized: an absolute directory or `s3://bucket/prefix`."""

    @abstractmethod
    def where(self, relative: str) -> str:
        """The full name of an object, for messages: a path, or `s3://bucket/key`."""

    @abstractmethod
    def write_bytes(self, relative: str, data: bytes) -> None:
        """Store `data` as the object (replacing it)."""

    @abstractmethod
    def write_file(self, relative: str, source: Path) -> int:
        """Copy the file `source` to the object, streamed (never whole in memory); its size."""

    @abstractmethod
    def read_bytes(self, relative: str) -> bytes:
        """The object's bytes; StoredValueError if it cannot be read."""

    @abstractmethod
    def read_to_file(self, relative: str, target: Path) -> None:
        """Copy the object into the file `target`, streamed; StoredValueError if it cannot be read."""

    @abstractmethod
    def count(self, folder: str) -> int:
        """How many objects are directly in `folder` (a relative name without a trailing `/`)."""

    @abstractmethod
    def create_once(self, relative: str, data: bytes) -> None:
        """Store `data` as the object unless it exists: of workers racing to create it, one wins
        and all then read the winner's (the storage key, `activities.storage.keys`). Kept private
        (mode 0600) where the backend has modes."""


class LocalStorage(StorageBackend):
    """A directory; workers on several machines share it through a mount."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.location = str(self.root)

    def path(self, relative: str) -> Path:
        """The file of an object, inside the root (an escaping name is a StoredValueError)."""
        path = (self.root / relative).resolve()
        if not safe_relative(relative) or self.root not in path.parents:
            raise StoredValueError(f"invalid stored value reference {relative!r} (outside the storage {self.root})")
        return path

    def where(self, relative: str) -> str:
        return str(self.root / relative)

    def write_bytes(self, relative: str, data: bytes) -> None:
        target = self.path(relative)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as error:
            raise storage_error(f"cannot write {target}: {error.strerror or error} (check that the storage "
                                f"directory {self.root} is writable and has space)") from None

    def write_file(self, relative: str, source: Path) -> int:
        target = self.path(relative)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            return target.stat().st_size
        except OSError as error:
            raise storage_error(f"cannot copy {source} to {target}: {error.strerror or error} (check that the "
                                f"storage directory {self.root} is writable and has space)") from None

    def read_bytes(self, relative: str) -> bytes:
        path = self.path(relative)
        try:
            return path.read_bytes()
        except OSError as error:
            raise StoredValueError(f"{path}: {error.strerror or error}") from None

    def read_to_file(self, relative: str, target: Path) -> None:
        path = self.path(relative)
        try:
            shutil.copyfile(path, target)
        except FileNotFoundError as error:
            missing = path if error.filename == str(path) else target
            raise StoredValueError(f"{missing}: {error.strerror or error}") from None
        except OSError as error:
            raise StoredValueError(f"{path}: {error.strerror or error}") from None

    def count(self, folder: str) -> int:
        try:
            return sum(1 for _ in self.path(folder).iterdir())
        except FileNotFoundError:
            return 0

    def create_once(self, relative: str, data: bytes) -> None:
        """Written to a private temporary file, then linked into place: a racing worker's link fails
        and it keeps the winner's."""
        path = self.path(relative)
        if path.exists():
            return
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise storage_error(f"cannot create {path}: {error.strerror or error} (check that the storage "
                                f"directory {self.root} is writable)") from None
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another worker created it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/prefix`: the prefix has no leading or trailing `/` ("" = the bucket's top)."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{S3_SCHEME}{self.bucket}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative


def parse_location(text: str | Path) -> Path | S3Location:
    """A storage setting: `s3://bucket[/prefix]` or a directory; StorageLocationError for anything
    else (another URL scheme, a bucket name S3 refuses, a prefix with `.` or `..` parts)."""
    value = str(text).strip()
    if not value:
        raise StorageLocationError("the storage is empty: give a directory or s3://bucket/prefix")
    if value[:len(S3_SCHEME)].lower() == S3_SCHEME:
        bucket, _, prefix = value[len(S3_SCHEME):].partition("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise StorageLocationError(
                f"{value!r}: {bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots and "
                "hyphens); expected s3://bucket or s3://bucket/prefix")
        prefix = prefix.strip("/")
        if prefix and not safe_relative(prefix):
            raise StorageLocationError(f"{value!r}: the prefix {prefix!r} has an empty, '.' or '..' part")
        return S3Location(bucket, prefix)
    if re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", value):
        raise StorageLocationError(f"{value!r}: only s3:// URLs and directories are storages "
                                   "(for another S3-compatible service, set AWS_ENDPOINT_URL and use s3://)")
    return Path(value).expanduser()

