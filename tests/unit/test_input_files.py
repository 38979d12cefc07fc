"""FILE inputs checked on the client before a run starts (`client.input_files`): `@path` only, the
file must exist, be readable and fit the size bound; every problem named at once, other inputs
resolved as usual (`@` means nothing to them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.input_files import resolve_with_files
from temporal_flows.language.inputs import InputError

DECLARED = [{"id": "data", "type": "FILE"}, {"id": "extra", "type": "FILE", "required": False}, {"id": "who", "type": "STRING"}]


def test_a_file_input_names_a_local_file_relative_to_where_it_was_given(tmp_path: Path):
    (tmp_path / "rows.csv").write_text("a\nb\n")
    resolved, files = resolve_with_files(DECLARED, {"data": "@rows.csv", "who": "@ann"}, {"data": tmp_path})
    assert files == {"data": tmp_path / "rows.csv"}
    assert resolved["data"] == {"$tflowRef": str(tmp_path / "rows.csv"), "size": 4, "kind": "file"}  # a placeholder until stored
    assert resolved["who"] == "@ann" and resolved["extra"] is None


def test_every_problem_is_named_and_the_size_is_bounded(tmp_path: Path):
    (tmp_path / "big.csv").write_bytes(b"x" * 11)
    with pytest.raises(InputError) as raised:
        resolve_with_files(DECLARED, {"data": f"@{tmp_path / 'big.csv'}", "extra": f"@{tmp_path}"}, max_bytes=10)
    assert raised.value.messages == [
        f"input `data` (FILE): InputFileTooBig: {tmp_path / 'big.csv'} is 11 bytes, more than the 10 bytes a FILE input may be",
        f"input `extra` (FILE): no file {tmp_path} (it is a directory)",
        "input `who` (STRING) is required and was not given",
    ]
    with pytest.raises(InputError) as raised:
        resolve_with_files(DECLARED, {"data": "@", "extra": 3, "who": "x"})
    assert raised.value.messages == [
        "input `data` (FILE): got '@', expected a file given as @path (e.g. --input data=@rows.csv)",
        "input `extra` (FILE): got 3, expected a file given as @path (e.g. --input extra=@rows.csv)",
    ]
    with pytest.raises(InputError, match=r"^input `data` \(FILE\) is required and was not given$"):
        resolve_with_files(DECLARED, {"who": "x"})
