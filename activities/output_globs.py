"""`outputFiles` globs matched inside a working directory, with a bounded, loop-free walk.

The standard `glob` follows symlinked directories, so `**` over a link to `..` walks forever (and can
leave the working directory). This walk never enters a directory through a symlink, keeps a file
reached through a symlink only when it resolves inside the working directory, is iterative (any
depth), and stops past MAX_OUTPUT_FILES matches. Patterns read as `glob.glob(recursive=True)` reads
them: `*`, `?`, `[...]` within a name, `**` as a whole component for any number of directories, and
names starting with `.` matched only by a pattern component that starts with `.` too. It does
blocking I/O: run it off the event loop (`activities.storage.with_storage` does).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.api import OUTPUT_FILES_ERROR, TOO_MANY_OUTPUT_FILES_ERROR

MAX_OUTPUT_FILES = 10_000
"""Most files the `outputFiles` globs of one task run may match (each is copied into storage and
named in the task's result)."""
_MAGIC = re.compile(r"[*?[]")


def match_output_files(workdir: str | Path, patterns: list[str], limit: int = MAX_OUTPUT_FILES) -> dict[str, Path]:
    """Every regular file matching a pattern: its path relative to `workdir` (POSIX) → the file to
    copy, sorted by name. Raises TooManyOutputFiles past `limit`, OutputFilesError for a pattern
    that is absolute or climbs out with `..`."""
    base = Path(workdir).resolve()
    found: dict[str, Path] = {}
    for pattern in patterns:
        for name, source in _matches(base, _components(pattern)):
            found.setdefault(name, source)
            if len(found) > limit:
                raise ApplicationError(
                    f"outputFiles {patterns} match more than {limit:,} files; put them in an archive (tar, zip) "
                    "and list that, or narrow the globs", type=TOO_MANY_OUTPUT_FILES_ERROR, non_retryable=True)
    return dict(sorted(found.items()))


def _components(pattern: str) -> list[str]:
    parts = pattern.split("/")
    if pattern.startswith("/") or ".." in parts:
        raise ApplicationError(f"outputFiles {pattern!r}: a glob is relative to the working directory and stays in it "
                               "(no leading `/`, no `..`)", type=OUTPUT_FILES_ERROR, non_retryable=True)
    components = [part for part in parts if part not in ("", ".")]
    if pattern.endswith("/"):
        return []  # only directories match: no file does
    return [part for index, part in enumerate(components) if not (part == "**" and components[index - 1:index] == ["**"])]


def _matches(base: Path, parts: list[str]) -> Iterator[tuple[str, Path]]:
    """(relative name, file) for each file matching the components `parts`, walked with a stack of
    (directory relative to base, index of the component it must match next)."""
    if not parts:
        return
    stack: list[tuple[str, int]] = [("", 0)]
    seen: set[tuple[str, int]] = set()
    while stack:
        state = stack.pop()
        if state in seen:
            continue
        seen.add(state)
        folder, index = state
        part, last = parts[index], index == len(parts) - 1
        if part == "**" and not last:
            stack.append((folder, index + 1))  # no directory at all
        for entry in _entries(base / folder, "*" if part == "**" else part):
            name = f"{folder}/{entry.name}" if folder else entry.name
            if _is_real_directory(entry):
                if part == "**":
                    stack.append((name, index))
                elif not last:
                    stack.append((name, index + 1))
            elif last:
                source = _kept_file(base, entry)
                if source is not None:
                    yield name, source


def _entries(folder: Path, part: str) -> list[os.DirEntry[str]]:
    """The entries of `folder` whose name matches the component `part` (none if it cannot be read)."""
    magic = _MAGIC.search(part) is not None
    try:
        with os.scandir(folder) as listing:
            if not magic:
                return [entry for entry in listing if entry.name == part]
            hidden = part.startswith(".")
            return [entry for entry in listing if (hidden or not entry.name.startswith(".")) and fnmatchcase(entry.name, part)]
    except OSError:
        return []


def _is_real_directory(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _kept_file(base: Path, entry: os.DirEntry[str]) -> Path | None:
    """The file to copy for a matching entry: itself when regular, its target when a symlink to a
    regular file inside `base`; None otherwise (directories, devices, links leading out)."""
    try:
        if entry.is_file(follow_symlinks=False):
            return Path(entry.path)
        if not entry.is_symlink():
            return None
        target = Path(entry.path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, on older Pythons
        return None
    return target if base in target.parents and target.is_file() else None
