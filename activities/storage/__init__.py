"""The run's storage: big output values and output files, kept outside Temporal and passed through it
as small reference objects (`temporal_flows.expressions.references`), so no payload nears the history's limits.

Layout: `<root>/<run id>/<task run id>/outputs/<n>-<name>.json` (a value, as JSON) and
`<root>/<run id>/<task run id>/files/<path>` (an `outputFiles` match). The root is a directory (a
mount every worker shares, wherever it is mounted) or `s3://bucket/prefix` (any worker that reaches
the bucket), see `activities.storage.backends`; references hold the name relative to the root. It
is set once per worker process (`configure`, from `tflow worker --storage`, else `$TFLOW_STORAGE`,
else `<tflow data dir>/storage`). Nothing is removed automatically. Every function here blocks
(disk or network); the async ones (`with_storage`, `stage_input_files_async`, `shrink_async`) move
the work to a thread and heartbeat meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.api import CommandsRequest, CommandsResult
from activities.heartbeating import heartbeating
from activities.output_globs import match_output_files
from activities.storage.backends import (  # StoredValueError: raised here, imported from here by callers
    LocalStorage, S3Location, StorageBackend, StoredValueError, parse_location, safe_relative,
)
from activities.storage.keys import genuine, sign

from temporal_flows.expressions.references import REF_KEY, describe, is_reference

DEFAULT_THRESHOLD = 128 * 1024
"""Bytes (as JSON) above which an output value goes to storage."""
STORAGE_ENV = "TFLOW_STORAGE"
"""Environment variable naming the storage root (shared by workers on several machines)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StorageSettings:
    backend: StorageBackend
    threshold: int = DEFAULT_THRESHOLD

    @property
    def root(self) -> str:
        """The storage as a setting (`configure` takes it back): a directory or `s3://bucket/prefix`."""
        return self.backend.location


_settings: StorageSettings | None = None


def open_storage(location: str | Path) -> StorageBackend:
    """The backend of a storage setting: S3 for `s3://...`, else a local directory (created if
    missing); StorageLocationError for anything else (`backends.parse_location`)."""
    parsed = parse_location(location)
    if isinstance(parsed, S3Location):
        from activities.storage.s3 import S3Storage  # boto3 loads only in workers that use S3

        return S3Storage(parsed)
    return LocalStorage(parsed)


def configure(root: Path | str, threshold: int = DEFAULT_THRESHOLD) -> StorageSettings:
    """Set this worker process's storage (a directory, created if missing, or `s3://bucket/prefix`)
    and threshold. The same location keeps its backend (an S3 client is made once)."""
    global _settings
    if _settings is not None and str(root) == _settings.root:
        backend = _settings.backend
    else:
        backend = open_storage(root)
    _settings = StorageSettings(backend, threshold)
    return _settings


def settings() -> StorageSettings:
    """The configured storage; `$TFLOW_STORAGE` when no worker configured one."""
    if _settings is not None:
        return _settings
    if os.environ.get(STORAGE_ENV):
        return configure(os.environ[STORAGE_ENV])
    raise ApplicationError(f"No storage configured on this worker (tflow worker --storage DIR|s3://bucket/prefix or ${STORAGE_ENV})",
                           type="StorageError", non_retryable=True)


def root_run_of(request: Any) -> str:
    """The root run a request's task belongs to (`root_run_id`; its own run for requests without one)."""
    return getattr(request, "root_run_id", "") or request.run_id


def stored(value: Any, root_run_id: str) -> bool:
    """True when `value` is a reference a worker of this storage signed for the root run
    `root_run_id`, so it may be read; anything else shaped like a reference is plain data
    (`activities.storage.keys`)."""
    return is_reference(value) and genuine(value, root_run_id, settings().backend)


@dataclass(frozen=True)
class TaskStorage:
    """One task run's place in the run's storage; its references are signed for `root_run_id`."""

    run_id: str
    task_run_id: str
    root_run_id: str = ""
    """The run at the top of this run's subflow calls ("" = `run_id`)."""

    @classmethod
    def of(cls, request: Any) -> "TaskStorage":
        """The storage of an activity request (`run_id`, `task_run_id`, `root_run_id`)."""
        return cls(request.run_id, request.task_run_id, root_run_of(request))

    @property
    def prefix(self) -> str:
        return f"{_safe(self.run_id)}/{_safe(self.task_run_id)}"

    @property
    def root(self) -> str:
        return self.root_run_id or self.run_id

    def _reference(self, relative: str, size: int, kind: str) -> dict[str, Any]:
        return _signed_reference(relative, size, kind, self.root)

    def store_value(self, name: str, text: str) -> dict[str, Any]:
        """Write a JSON text as the value `name`; its reference."""
        backend = settings().backend
        folder = f"{self.prefix}/outputs"
        relative = f"{folder}/{backend.count(folder)}-{_safe(name)[:80]}.json"
        data = text.encode()
        backend.write_bytes(relative, data)
        return self._reference(relative, len(data), "json")

    def store_file(self, source: Path, name: str) -> dict[str, Any]:
        """Copy a produced file (streamed) into storage under its relative `name`; its reference."""
        relative = f"{self.prefix}/files/{name}"
        return self._reference(relative, settings().backend.write_file(relative, source), "file")

    def shrink(self, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """`values` with the biggest entries stored as references until every entry and the whole
        fit under the threshold (each entry is measured as JSON once)."""
        threshold = _settings.threshold if _settings is not None else DEFAULT_THRESHOLD
        if not values:
            return values
        texts = {key: _json(value) for key, value in values.items()}
        total = sum(len(text) for text in texts.values())
        if total <= threshold:
            return values
        shrunk = dict(values)
        for key in sorted(texts, key=lambda name: len(texts[name]), reverse=True):
            if total <= threshold or len(texts[key]) < 256:
                break
            if stored(values[key], self.root):
                continue  # already a reference (data merely shaped like one is stored like any value)
            shrunk[key] = self.store_value(f"{prefix}{key}", texts[key])
            total -= len(texts[key])
        return shrunk

    async def shrink_async(self, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """`shrink` for the event loop: values that fit are returned at once, bigger ones are stored
        from a thread (a bucket is a network call away)."""
        if not _over(values):
            return values
        async with heartbeating():
            return await asyncio.to_thread(self.shrink, values, prefix)


def store_input_file(run_id: str, input_id: str, source: Path) -> dict[str, Any]:
    """A FILE input's file (`tflow run --input NAME=@path`) copied, streamed, into the storage of the
    run `run_id` before it starts, as `<run id>/inputs/<input id>/<file name>`; its reference, of
    kind `file` and signed for that run, as an `outputFiles` match's is. Blocking."""
    relative = f"{_safe(run_id)}/inputs/{_safe(input_id)}/{_safe(source.name)}"
    return _signed_reference(relative, settings().backend.write_file(relative, source), "file", run_id)


def _signed_reference(relative: str, size: int, kind: str, root_run_id: str) -> dict[str, Any]:
    """The only place references are made: bound to the root run and signed."""
    return sign({REF_KEY: relative, "size": size, "kind": kind}, root_run_id, settings().backend)


def _over(values: dict[str, Any]) -> bool:
    """True when `values` do not fit under the threshold as they are (`shrink` would store some)."""
    threshold = _settings.threshold if _settings is not None else DEFAULT_THRESHOLD
    return bool(values) and sum(len(_json(value)) for value in values.values()) > threshold


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _safe(name: str) -> str:
    """`name` as one path component: never empty, `.` or `..`."""
    safe = _UNSAFE.sub("_", str(name))
    return safe if safe.strip(".") else "_" * max(len(safe), 1)


def _object_of(reference: dict[str, Any], root_run_id: str) -> str:
    """The object a reference of the root run `root_run_id` names, relative to the root (a
    reference never escapes it); `StoredValueError` for data that is not one (callers treat that
    as plain data first)."""
    if not stored(reference, root_run_id):
        raise StoredValueError(f"{describe(reference)} is not a stored value of run {root_run_id}")
    relative = str(reference.get(REF_KEY) or "")
    if not safe_relative(relative):
        raise StoredValueError(f"invalid stored value reference {relative!r} (outside the storage {settings().root})")
    return relative


def read_bytes(reference: dict[str, Any], root_run_id: str) -> bytes:
    relative = _object_of(reference, root_run_id)
    try:
        return settings().backend.read_bytes(relative)
    except StoredValueError as error:
        raise StoredValueError(f"cannot read the stored value {describe(reference)} at {error}") from None


def read_value(reference: dict[str, Any], root_run_id: str) -> Any:
    """What a template sees for a reference: the value (`json`) or the file's text (`file`)."""
    data = read_bytes(reference, root_run_id)
    if reference.get("kind") == "file":
        try:
            return data.decode()
        except UnicodeDecodeError:
            where = settings().backend.where(_object_of(reference, root_run_id))
            raise StoredValueError(f"the stored file {where} is not UTF-8 text; use it through inputFiles instead") from None
    return json.loads(data)


# -- files in a working directory ------------------------------------------------------------


def stage_input_files(workdir: str | Path, input_files: dict[str, Any], root_run_id: str) -> None:
    """`inputFiles`: write each `name: content` (text, or a reference to a stored value or file of
    the root run `root_run_id`; other data as JSON) into the working directory before the task
    runs; a stored file is copied streamed. Blocking: `stage_input_files_async` runs it in a thread."""
    if not input_files:
        return  # most tasks have none: resolving the directory would cost a few syscalls each
    base = Path(workdir).resolve()
    for name, content in (input_files or {}).items():
        target = (base / name).resolve()
        if base not in target.parents:
            raise ApplicationError(f"inputFiles: {name!r} is outside the working directory", type="InputFileError",
                                   non_retryable=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not stored(content, root_run_id):
                target.write_text(content if isinstance(content, str) else _json(content))
            elif content.get("kind") == "file":
                _copy_stored_file(content, root_run_id, target)
            else:
                data = read_bytes(content, root_run_id)
                value = json.loads(data)
                target.write_bytes(value.encode() if isinstance(value, str) else data)
        except StoredValueError as error:
            raise ApplicationError(f"inputFiles {name!r}: {error}", type="StoredValueError", non_retryable=True) from None


def _copy_stored_file(reference: dict[str, Any], root_run_id: str, target: Path) -> None:
    relative = _object_of(reference, root_run_id)
    try:
        settings().backend.read_to_file(relative, target)
    except StoredValueError as error:
        raise StoredValueError(f"cannot read the stored value {describe(reference)} at {error}") from None


async def stage_input_files_async(workdir: str | Path, input_files: dict[str, Any], root_run_id: str) -> None:
    """`stage_input_files` for the event loop: in a thread, heartbeating, when there are any."""
    if input_files:
        async with heartbeating():
            await asyncio.to_thread(stage_input_files, workdir, input_files, root_run_id)


def collect_output_files(workdir: str | Path, patterns: list[str], storage: TaskStorage) -> dict[str, Any]:
    """`outputFiles`: every file matching a glob (relative to the working directory, `**` allowed,
    symlinked directories never entered, see `activities.output_globs`) copied into storage;
    `{relative path: reference}`. Blocking: called in a thread by `with_storage`."""
    return {name: storage.store_file(source, name) for name, source in match_output_files(workdir, patterns).items()}


def _stored_result(result: CommandsResult, request: CommandsRequest, workdir: str | Path, collect_files: bool) -> CommandsResult:
    storage = TaskStorage.of(request)
    files = collect_output_files(workdir, request.output_files, storage) if collect_files and request.output_files else None
    return dataclasses.replace(
        result, vars=storage.shrink(result.vars), extracted=storage.shrink(result.extracted, prefix="extracted-"),
        output_files=files,
    )


async def with_storage(result: CommandsResult, request: CommandsRequest, workdir: str | Path, collect_files: bool) -> CommandsResult:
    """A process task's result as it travels: big `vars`/extracted values as references, and the
    `outputFiles` matches (when `collect_files`: the task succeeded) copied into storage, in a
    thread, heartbeating meanwhile (big files, or a bucket, must not stall the event loop)."""
    if not (collect_files and request.output_files) and not _over(result.vars) and not _over(result.extracted):
        return dataclasses.replace(result, output_files=None)  # nothing to store: most tasks
    async with heartbeating():
        return await asyncio.to_thread(_stored_result, result, request, workdir, collect_files)
