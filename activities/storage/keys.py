"""References to stored values that cannot be forged (issue 14 part E).

A reference travels through Temporal as plain data, next to data a task, an HTTP server or a caller
controls; data shaped like one must never make a worker read another run's storage. So the worker
that stores a value signs its reference: HMAC-SHA256, with the storage's key, over the path, size,
kind and the root run it belongs to (the run at the top of its subflow calls, so a child run and
its parent read each other's values). A worker reads a reference only when the signature checks
and its run is the reading run's root; anything else shaped like a reference is plain data.

The key is `$TFLOW_STORAGE_KEY` (read once, then removed from the worker's environment so task
processes do not inherit it), else the object `.tflow-storage-key` at the storage's root (the file
`<dir>/.tflow-storage-key`, mode 0600, or `s3://bucket/prefix/.tflow-storage-key`), created on
first use by whichever worker comes first (`StorageBackend.create_once`); every worker sharing the
storage shares that object, hence the key. Whoever can read the storage can read that key: with S3,
give the key through `$TFLOW_STORAGE_KEY` when the bucket's readers must not be able to sign.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.storage.backends import StorageBackend, StoredValueError
from temporal_flows.expressions.references import REF_KEY

KEY_ENV = "TFLOW_STORAGE_KEY"
"""Environment variable holding the storage key (at least `MIN_KEY_CHARS` characters)."""
KEY_FILE = ".tflow-storage-key"
"""The key's object at the storage's root when `$TFLOW_STORAGE_KEY` is not set."""
MIN_KEY_CHARS = 16
RUN_FIELD = "run"
"""The root run a reference belongs to (signed)."""
SIGNATURE_FIELD = "sig"
"""HMAC-SHA256 (hex) of the reference's fields (`_message`)."""

_lock = threading.Lock()
_env_key: bytes | None = None
_stored_keys: dict[str, bytes] = {}
"""Keys read from storages, by location."""


def sign(reference: dict[str, Any], run: str, storage: StorageBackend) -> dict[str, Any]:
    """`reference` bound to the root run `run` and signed with the key of `storage`."""
    bound = {**reference, RUN_FIELD: run}
    bound[SIGNATURE_FIELD] = _signature(bound, storage_key(storage))
    return bound


def genuine(value: Any, run: str, storage: StorageBackend) -> bool:
    """True when `value` is a reference this storage's workers signed for the root run `run`."""
    if type(value) is not dict or not isinstance(value.get(REF_KEY), str) or value.get(RUN_FIELD) != run:
        return False
    signature = value.get(SIGNATURE_FIELD)
    if not isinstance(signature, str):
        return False
    return hmac.compare_digest(signature, _signature(value, storage_key(storage)))


def _signature(reference: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, _message(reference), hashlib.sha256).hexdigest()


def _message(reference: dict[str, Any]) -> bytes:
    """The signed fields in a fixed order, as JSON (unambiguous whatever the values hold)."""
    fields = [reference.get(REF_KEY), reference.get("size"), reference.get("kind"), reference.get(RUN_FIELD)]
    return json.dumps(fields, separators=(",", ":"), default=str).encode()


def storage_key(storage: StorageBackend) -> bytes:
    """The key of `storage`: `$TFLOW_STORAGE_KEY`, else its key object (created once)."""
    with _lock:
        if (key := _environment_key()) is not None:
            return key
        if storage.location not in _stored_keys:
            _stored_keys[storage.location] = _stored_key(storage)
        return _stored_keys[storage.location]


def _environment_key() -> bytes | None:
    """`$TFLOW_STORAGE_KEY`, taken out of the environment the first time (under `_lock`)."""
    global _env_key
    if _env_key is None and KEY_ENV in os.environ:
        text = os.environ.pop(KEY_ENV)  # task processes inherit the worker's environment: not this
        if len(text) < MIN_KEY_CHARS:
            raise ApplicationError(f"${KEY_ENV} is too short: at least {MIN_KEY_CHARS} characters",
                                   type="StorageError", non_retryable=True)
        _env_key = text.encode()
    return _env_key


def child_environment() -> dict[str, str]:
    """The environment of a child process of the worker's own that signs and reads references (the
    render child, `activities.render`): the worker's, with `$TFLOW_STORAGE_KEY` put back if set."""
    with _lock:
        key = _environment_key()
    return {**os.environ, KEY_ENV: key.decode()} if key is not None else dict(os.environ)


def _stored_key(storage: StorageBackend) -> bytes:
    """Read the storage's key object, creating it first if missing (racing workers all end up with
    the one that won)."""
    storage.create_once(KEY_FILE, (secrets.token_hex(32) + "\n").encode())
    try:
        key = storage.read_bytes(KEY_FILE).decode(errors="replace").strip()
    except StoredValueError as error:
        raise ApplicationError(f"cannot read the storage key {error}", type="StorageError", non_retryable=True) from None
    if len(key) < MIN_KEY_CHARS:
        raise ApplicationError(f"the storage key {storage.where(KEY_FILE)} is too short: at least {MIN_KEY_CHARS} characters",
                               type="StorageError", non_retryable=True)
    return key.encode()
