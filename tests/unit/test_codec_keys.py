"""The payload codec without a server: keys from the environment or a key file (bad ones refused
naming where, never showing the key), AES-256-GCM round trips, and what cannot be decrypted."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from client.codec import (
    ENCODING,
    KEY_ENV,
    KEY_FILE_ENV,
    KEY_ID_METADATA,
    MAX_KEY_FILE_BYTES,
    CodecDecodeError,
    CodecKey,
    CodecKeyError,
    EncryptionCodec,
    KeyRing,
    data_converter,
    load_key_ring,
    secret_inputs,
)

KEY = os.urandom(32)
TEXT = base64.b64encode(KEY).decode()


def test_a_bare_key_is_named_by_its_fingerprint_and_an_id_key_by_its_id():
    bare = load_key_ring({KEY_ENV: TEXT})
    assert bare is not None and bare.encrypting.secret == KEY
    assert bare.encrypting.key_id.startswith("sha256-") and len(bare.encrypting.key_id) == len("sha256-") + 8
    assert load_key_ring({KEY_ENV: f"  {TEXT}\n"}).encrypting.key_id == bare.encrypting.key_id  # same key, same id
    named = load_key_ring({KEY_ENV: f"2025-06:{TEXT}"})
    assert named.key_ids == ["2025-06"] and named.encrypting.secret == KEY
    urlsafe = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
    assert load_key_ring({KEY_ENV: f"k1:{urlsafe}"}).encrypting.secret == KEY
    assert load_key_ring({}) is None and load_key_ring({KEY_ENV: " ", KEY_FILE_ENV: ""}) is None
    assert TEXT not in repr(named)


@pytest.mark.parametrize("given, expected", [
    (base64.b64encode(os.urandom(16)).decode(), "must be 32 bytes (AES-256) in base64, got 16 bytes"),
    ("not base64 at all!", "is not base64"),
    (f"bad id:{TEXT}", "key id 'bad id' must be 1-64 letters"),
    (f":{TEXT}", "key id '' must be"),
])
def test_a_bad_key_is_refused_naming_the_variable_not_the_key(given: str, expected: str):
    with pytest.raises(CodecKeyError) as refused:
        load_key_ring({KEY_ENV: given})
    message = str(refused.value)
    assert message.startswith(f"{KEY_ENV}: ") and expected in message
    assert given.rpartition(":")[2] not in message  # the key text is never shown


def test_a_key_file_holds_several_keys_the_first_encrypting(tmp_path: Path):
    other = os.urandom(32)
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2025-06\n\nnew:{TEXT}\n  old:{base64.b64encode(other).decode()}  \n")
    keys = load_key_ring({KEY_FILE_ENV: str(path)})
    assert keys.key_ids == ["new", "old"] and keys.encrypting.secret == KEY and keys.keys[1].secret == other
    assert keys.origin == str(path)


def test_a_bad_key_file_is_refused_naming_its_line(tmp_path: Path):
    path = tmp_path / "keys"
    path.write_text(f"a:{TEXT}\nb:{TEXT[:20]}\n")
    with pytest.raises(CodecKeyError, match=rf"^{path}:2: the key is not base64|^{path}:2: the key must be 32 bytes"):
        load_key_ring({KEY_FILE_ENV: str(path)})
    path.write_text(f"a:{TEXT}\na:{TEXT}\n")
    with pytest.raises(CodecKeyError, match="key id 'a' is given twice"):
        load_key_ring({KEY_FILE_ENV: str(path)})
    path.write_text("# nothing yet\n")
    with pytest.raises(CodecKeyError, match="no key in it"):
        load_key_ring({KEY_FILE_ENV: str(path)})
    with pytest.raises(CodecKeyError, match=f"{KEY_FILE_ENV}={tmp_path / 'absent'}: cannot read it"):
        load_key_ring({KEY_FILE_ENV: str(tmp_path / "absent")})
    path.write_bytes(b"x" * (MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(CodecKeyError, match="not a key file"):
        load_key_ring({KEY_FILE_ENV: str(path)})
    with pytest.raises(CodecKeyError, match="not both"):
        load_key_ring({KEY_ENV: TEXT, KEY_FILE_ENV: str(path)})


def ring(*names: str) -> KeyRing:
    return KeyRing(tuple(CodecKey(name, os.urandom(32)) for name in names))


async def test_payloads_round_trip_sealed_with_a_fresh_nonce_each_time():
    keys = ring("k1")
    converter = data_converter(keys)
    value = {"password": "hunter2", "n": [1, 2]}
    first, second = (await converter.encode([value]))[0], (await converter.encode([value]))[0]
    for sealed in (first, second):
        assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID_METADATA] == b"k1"
        assert b"hunter2" not in sealed.SerializeToString() and b"json/plain" not in sealed.SerializeToString()
    assert first.data != second.data  # a random nonce: equal values do not look equal in the history
    assert await converter.decode([first, second], [dict, dict]) == [value, value]
    assert data_converter(None) is DataConverter.default


async def test_plain_payloads_pass_through_decoding():
    """Runs written before a key was set stay readable once it is."""
    plain = (await DataConverter.default.encode(["written without a key"]))[0]
    assert await data_converter(ring("k1")).decode([plain], [str]) == ["written without a key"]


async def test_what_cannot_be_decrypted_is_an_error_naming_the_key():
    sealed = EncryptionCodec(ring("k1")).encrypt(Payload(metadata={"encoding": b"json/plain"}, data=b'"x"'))
    with pytest.raises(CodecDecodeError, match="key id 'k1', which TFLOW_CODEC_KEY does not hold \\(it holds k2\\)"):
        await EncryptionCodec(ring("k2")).decode([sealed])
    with pytest.raises(CodecDecodeError, match="does not decrypt with key id 'k1'"):
        await EncryptionCodec(ring("k1")).decode([sealed])  # another key under the same id
    holder = ring("k1")
    sealed = EncryptionCodec(holder).encrypt(Payload(data=b"x"))
    altered = Payload()
    altered.CopyFrom(sealed)
    altered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(CodecDecodeError, match="altered"):
        await EncryptionCodec(holder).decode([altered])
    relabelled = KeyRing((CodecKey("k9", holder.keys[0].secret),))  # same secret, another id: the id is sealed in
    renamed = Payload()
    renamed.CopyFrom(sealed)
    renamed.metadata[KEY_ID_METADATA] = b"k9"
    with pytest.raises(CodecDecodeError, match="does not decrypt"):
        await EncryptionCodec(relabelled).decode([renamed])
    truncated = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"k1"}, data=b"short")
    with pytest.raises(CodecDecodeError, match="truncated"):
        await EncryptionCodec(holder).decode([truncated])


def test_secret_inputs_are_the_secret_declarations_with_a_value():
    declared = [{"id": "pw", "type": "SECRET"}, {"id": "token", "type": "SECRET"}, {"id": "name", "type": "STRING"}]
    assert secret_inputs(declared, {"pw": "x", "token": None, "name": "ann"}) == ["pw"]
    assert secret_inputs(declared, {"name": "ann"}) == []
