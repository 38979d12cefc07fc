"""References to stored values that cannot be forged (issue 14 part E).

A reference travels through Temporal as plain data, next to data a task, an HTTP server or a caller
controls; data shaped like one must never make a worker read another run's storage. So the worker
that stores a value signs its reference: HMAC-SHA256, with the storage's key, over the path, size,
kind and the root run it belongs to (the run at the top of its subflow calls, so a child run and
its parent read each other's values). A worker reads a reference only when the signature checks
and its run is the reading run's root; anything else shaped like a reference is plain data.

The key is `$TFLOW_STORAGE_KEY` (read once, then removed from the worker's environment so task
processes do not inherit it), else the file `<storage root>/.tflow-storage-key`, created with mode
0600 on first use; every worker sharing the storage shares that file, hence the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from temporal_flows.expressions.references import REF_KEY

KEY_ENV = "TFLOW_STORAGE_KEY"
"""Environment variable holding the storage key (at least `MIN_KEY_CHARS` characters)."""
KEY_FILE = ".tflow-storage-key"
"""The key's file in the storage root when `$TFLOW_STORAGE_KEY` is not set."""
MIN_KEY_CHARS = 16
RUN_FIELD = "run"
"""The root run a reference belongs to (signed)."""
SIGNATURE_FIELD = "sig"
"""HMAC-SHA256 (hex) of the reference's fields (`_message`)."""

_lock = threading.Lock()
_env_key: bytes | None = None
_file_keys: dict[Path, bytes] = {}


def sign(reference: dict[str, Any], run: str, root: Path) -> dict[str, Any]:
    """`reference` bound to the root run `run` and signed with the key of the storage at `root`."""
    bound = {**reference, RUN_FIELD: run}
    bound[SIGNATURE_FIELD] = _signature(bound, storage_key(root))
    return bound


def genuine(value: Any, run: str, root: Path) -> bool:
    """True when `value` is a reference this storage's workers signed for the root run `run`."""
    if type(value) is not dict or not isinstance(value.get(REF_KEY), str) or value.get(RUN_FIELD) != run:
        return False
    signature = value.get(SIGNATURE_FIELD)
    if not isinstance(signature, str):
        return False
    return hmac.compare_digest(signature, _signature(value, storage_key(root)))


def _signature(reference: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, _message(reference), hashlib.sha256).hexdigest()


def _message(reference: dict[str, Any]) -> bytes:
    """The signed fields in a fixed order, as JSON (unambiguous whatever the values hold)."""
    fields = [reference.get(REF_KEY), reference.get("size"), reference.get("kind"), reference.get(RUN_FIELD)]
    return json.dumps(fields, separators=(",", ":"), default=str).encode()


def storage_key(root: Path) -> bytes:
    """The key of the storage at `root`: `$TFLOW_STORAGE_KEY`, else its key file (created once)."""
    global _env_key
    with _lock:
        if _env_key is None and KEY_ENV in os.environ:
            text = os.environ.pop(KEY_ENV)  # task processes inherit the worker's environment: not this
            if len(text) < MIN_KEY_CHARS:
                raise ApplicationError(f"${KEY_ENV} is too short: at least {MIN_KEY_CHARS} characters",
                                       type="StorageError", non_retryable=True)
            _env_key = text.encode()
        if _env_key is not None:
            return _env_key
        if root not in _file_keys:
            _file_keys[root] = _key_file(root)
        return _file_keys[root]


def _key_file(root: Path) -> bytes:
    """Read `<root>/.tflow-storage-key`, or create it (0600) if missing: written to a private
    temporary file, then linked into place, so racing workers all end up with the one that won."""
    path = root / KEY_FILE
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        temporary = root / f"{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another worker created it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)
    try:
        key = path.read_text().strip()
    except OSError as error:
        raise ApplicationError(f"cannot read the storage key {path}: {error.strerror or error}",
                               type="StorageError", non_retryable=True) from None
    if len(key) < MIN_KEY_CHARS:
        raise ApplicationError(f"the storage key {path} is too short: at least {MIN_KEY_CHARS} characters",
                               type="StorageError", non_retryable=True)
    return key.encode()
