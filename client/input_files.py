"""FILE inputs (SPEC §5, Kestra's `type: FILE`): the starter gives a local file as `@path`
(`tflow run --input data=@rows.csv`); it is checked before anything starts, then copied, streamed,
into the run's storage (the workers' storage: `$TFLOW_STORAGE`, else `<data dir>/storage`) under
`<run id>/inputs/<input id>/<file name>`, and the input's value is that file's signed reference, as
an `outputFiles` match's is: `inputFiles: {rows.csv: "{{ inputs.data }}"}` stages it on a worker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Mapping

from temporalio.exceptions import ApplicationError

from activities import storage
from client.worker import storage_root
from temporal_flows.expressions.references import REF_KEY
from temporal_flows.language.inputs import FILE_TYPE, InputError, canonical_type, resolve_inputs

MAX_INPUT_FILE_BYTES = 1 << 30
"""A FILE input's file may be at most this big (1 GiB): past it the run is refused before it starts."""
FILE_PREFIX = "@"


def resolve_with_files(
    declared: list[dict[str, Any]], given: Mapping[str, Any], relative_to: Mapping[str, Path] | None = None,
    max_bytes: int = MAX_INPUT_FILE_BYTES,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """(the run's inputs, {FILE input id: its file}): `resolve_inputs`, where each FILE input is
    given as `@path` (relative to `relative_to[id]`, else the current directory) and stands for a
    placeholder until `store_input_files` replaces it. Raise `InputError` with every problem: a
    FILE input given anything else, a missing or unreadable file, one past `max_bytes`."""
    messages: list[str] = []
    files: dict[str, Path] = {}
    placeholders = dict(given)
    for declaration in declared:
        input_id = declaration["id"]
        if canonical_type(declaration.get("type")) != FILE_TYPE or given.get(input_id) is None:
            continue
        value = given[input_id]
        found = _local_file(input_id, value, (relative_to or {}).get(input_id), max_bytes)
        if isinstance(found, str):
            messages.append(found)
            found = (Path(), 0)  # a placeholder still: the problem is said once
        path, size = found
        files[input_id] = path
        placeholders[input_id] = {REF_KEY: str(path), "size": size, "kind": "file"}
    try:
        resolved = resolve_inputs(declared, placeholders)
    except InputError as error:
        messages.extend(error.messages)
    if messages:
        raise InputError(messages)
    return resolved, files


def _local_file(input_id: str, value: Any, base: Path | None, max_bytes: int) -> tuple[Path, int] | str:
    """The file a FILE input names and its size, or what is wrong, naming the input."""
    name = f"input `{input_id}` ({FILE_TYPE})"
    if not isinstance(value, str) or not value.startswith(FILE_PREFIX) or len(value) == 1:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return f"{name}: got {shown}, expected a file given as @path (e.g. --input {input_id}=@rows.csv)"
    path = Path(value[1:]).expanduser()
    path = (base / path if base is not None else path).absolute()
    try:
        if not path.is_file():
            return f"{name}: no file {path}" + (" (it is a directory)" if path.is_dir() else "")
        size = path.stat().st_size
        with path.open("rb"):
            pass  # readable: fail here, not half-way into a run's storage
    except OSError as error:
        return f"{name}: cannot read {path}: {error.strerror or error}"
    if size > max_bytes:
        return f"{name}: InputFileTooBig: {path} is {size} bytes, more than the {max_bytes} bytes a FILE input may be"
    return path, size


async def store_input_files(run_id: str, inputs: dict[str, Any], files: Mapping[str, Path]) -> dict[str, Any]:
    """`inputs` with each FILE input's placeholder replaced by its file stored for the run `run_id`
    (streamed, in a thread); a storage that cannot take it raises `InputError` naming the input."""
    if not files:
        return inputs
    _ensure_storage()
    stored = dict(inputs)
    for input_id, path in files.items():
        try:
            stored[input_id] = await asyncio.to_thread(storage.store_input_file, run_id, input_id, path)
        except ApplicationError as error:  # StorageError: not writable, no space, bucket refused
            raise InputError([f"input `{input_id}` ({FILE_TYPE}): cannot store {path}: {error.message}"]) from None
    return stored


def _ensure_storage() -> None:
    """The workers' storage in this process too (an embedded worker has set it already)."""
    try:
        storage.settings()
    except ApplicationError:
        storage.configure(storage_root())
