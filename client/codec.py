"""The encrypting payload codec: AES-256-GCM over every payload this project's clients and workers
send to Temporal, so SECRET inputs (and every other input, output and result) sit in its history as
ciphertext that only holders of the key can read.

Keys come from the environment: `TFLOW_CODEC_KEY` (one key: base64 of 32 bytes, optionally
`id:base64`) or `TFLOW_CODEC_KEY_FILE` (one `id:base64` key a line; the first encrypts, all decrypt,
which is how keys rotate). Without a key, payloads stay plain, as Temporal's default converter makes
them. An encrypted payload is the whole original payload (metadata and data) sealed, in a payload of
encoding `binary/encrypted` whose `encryption-key-id` names the key; decoding passes any other
payload through unchanged, so runs written before a key was set stay readable.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

KEY_ENV = "TFLOW_CODEC_KEY"
KEY_FILE_ENV = "TFLOW_CODEC_KEY_FILE"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
"""AES-256."""
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_FILE_BYTES = 64 * 1024
"""A key file is a few lines; past this it is not one (a wrong path), and is refused unread."""
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FINGERPRINT_PREFIX = "sha256-"
"""A key given without an id is named by the start of its SHA-256: the same key, the same id."""


class CodecKeyError(Exception):
    """The configured key or key file is unusable (usage error: exit code 2). Never shows a key."""


class CodecDecodeError(Exception):
    """An encrypted payload this process cannot decrypt: its key is not held, or it was altered."""


@dataclass(frozen=True)
class CodecKey:
    key_id: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """The keys a process holds: the first encrypts, every one decrypts (key rotation)."""

    keys: tuple[CodecKey, ...]
    origin: str = KEY_ENV
    """Where they came from, for messages: `TFLOW_CODEC_KEY` or the key file's path."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise CodecKeyError(f"{self.origin}: no key")
        seen: set[str] = set()
        for key in self.keys:
            if key.key_id in seen:
                raise CodecKeyError(f"{self.origin}: key id {key.key_id!r} is given twice")
            seen.add(key.key_id)

    @property
    def encrypting(self) -> CodecKey:
        return self.keys[0]

    @property
    def key_ids(self) -> list[str]:
        return [key.key_id for key in self.keys]


def parse_key(text: str, where: str) -> CodecKey:
    """One key, `base64` or `id:base64`; `where` names it in errors (the key itself never appears)."""
    key_id, sep, encoded = text.strip().rpartition(":")
    encoded = encoded.rstrip("=") + "=" * (-len(encoded.rstrip("=")) % 4)  # padding optional
    if sep and not KEY_ID_PATTERN.fullmatch(key_id):
        raise CodecKeyError(
            f"{where}: key id {key_id[:70]!r} must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)")
    try:
        secret = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise CodecKeyError(f"{where}: the key is not base64 (make one with `openssl rand -base64 32`)") from None
    if len(secret) != KEY_BYTES:
        raise CodecKeyError(
            f"{where}: the key must be {KEY_BYTES} bytes (AES-256) in base64, got {len(secret)} bytes "
            "(make one with `openssl rand -base64 32`)")
    return CodecKey(key_id if sep else FINGERPRINT_PREFIX + hashlib.sha256(secret).hexdigest()[:8], secret)


def read_key_file(path: Path) -> KeyRing:
    """Keys one a line (`id:base64`; blank lines and `#` comments skipped), the first encrypting."""
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise CodecKeyError(f"{KEY_FILE_ENV}={path}: over {MAX_KEY_FILE_BYTES} bytes, not a key file")
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CodecKeyError(f"{KEY_FILE_ENV}={path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CodecKeyError(f"{KEY_FILE_ENV}={path}: not a text file of `id:base64` lines") from None
    keys = [
        parse_key(line, f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise CodecKeyError(f"{KEY_FILE_ENV}={path}: no key in it (one `id:base64` a line)")
    return KeyRing(tuple(keys), origin=str(path))


def load_key_ring(environ: Optional[Mapping[str, str]] = None) -> Optional[KeyRing]:
    """The keys the environment names (`TFLOW_CODEC_KEY` or `TFLOW_CODEC_KEY_FILE`); None: no key."""
    environ = os.environ if environ is None else environ
    key, path = environ.get(KEY_ENV, "").strip(), environ.get(KEY_FILE_ENV, "").strip()
    if key and path:
        raise CodecKeyError(f"set {KEY_ENV} or {KEY_FILE_ENV}, not both (the file can hold several keys)")
    if key:
        return KeyRing((parse_key(key, KEY_ENV),))
    if path:
        return read_key_file(Path(path).expanduser())
    return None


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM of each whole payload with a fresh random nonce; the key id is the associated
    data, so a payload relabelled with another key's id does not decrypt."""

    def __init__(self, ring: KeyRing):
        self.ring = ring
        self._ciphers = {key.key_id: AESGCM(key.secret) for key in ring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.ring.encrypting.key_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.ring.encrypting.key_id].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; a payload not encrypted (written without a key) as it is."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecDecodeError(
                f"a payload is encrypted with key id {key_id[:70]!r}, which {self.ring.origin} does not hold "
                f"(it holds {', '.join(self.ring.key_ids)}): add that key to {KEY_FILE_ENV} after the new one")
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise CodecDecodeError(f"an encrypted payload (key id {key_id!r}) is truncated: {len(data)} bytes")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
            return Payload.FromString(plain)
        except InvalidTag:
            raise CodecDecodeError(
                f"an encrypted payload does not decrypt with key id {key_id!r}: another key under that id, "
                "or the payload was altered") from None
        except DecodeError:
            raise CodecDecodeError(f"an encrypted payload (key id {key_id!r}) holds no payload") from None


def data_converter(ring: Optional[KeyRing]) -> DataConverter:
    """Temporal's default converter, encrypting with `ring` (None: plain payloads); with a key,
    failures' messages and stack traces are payloads too (a failed command's error may quote a
    secret), so they are encrypted as well."""
    if ring is None:
        return DataConverter.default
    return dataclasses.replace(
        DataConverter.default, payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def environment_data_converter(environ: Optional[Mapping[str, str]] = None) -> DataConverter:
    """The converter every client and worker of this project uses: encrypting when a key is set."""
    return data_converter(load_key_ring(environ))


def encrypts(client: Client) -> bool:
    return isinstance(client.data_converter.payload_codec, EncryptionCodec)


def with_environment_codec(client: Client, environ: Optional[Mapping[str, str]] = None) -> Client:
    """`client`, or when a key is set and `client` was made without a codec, the same connection
    with the encrypting one (a worker must read what this project's clients write)."""
    if client.data_converter.payload_codec is not None:
        return client
    ring = load_key_ring(environ)
    if ring is None:
        return client
    config: dict[str, Any] = dict(client.config())
    config["data_converter"] = data_converter(ring)
    return Client(**config)


def secret_inputs(declared: Iterable[Mapping[str, Any]], inputs: Mapping[str, Any]) -> list[str]:
    """The ids of the SECRET inputs that have a value in `inputs` (resolved: given or default)."""
    return [
        str(declaration.get("id")) for declaration in declared
        if declaration.get("type") == "SECRET" and inputs.get(declaration.get("id")) is not None
    ]


def plain_secrets_warning(client: Client, declared: Iterable[Mapping[str, Any]], inputs: Mapping[str, Any]) -> Optional[str]:
    """What to tell who starts a run with SECRET values on a client that does not encrypt; else None."""
    names = secret_inputs(declared, inputs)
    if not names or encrypts(client):
        return None
    listed = ", ".join(f"`{name}`" for name in names)
    return (
        f"SECRET input {listed} will be stored in plain text in the Temporal history (the workflow input and "
        f"every task input that renders it): set {KEY_ENV} (or {KEY_FILE_ENV}) for this command and every "
        "worker to encrypt payloads")
