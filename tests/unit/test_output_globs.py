"""`outputFiles` globs (activities.output_globs): the standard glob's reading of patterns, but no
directory symlink entered (a loop under `**` ends at once), nothing from outside the working
directory, absolute or `..` globs refused, and a cap on the number of matches."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.output_globs import match_output_files


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A working directory with files, hidden ones, symlink loops and links leading out."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    (work / "a" / "b").mkdir(parents=True)
    (work / ".hidden").mkdir()
    outside.mkdir()
    for path in ("top.txt", "a/b/one.txt", "a/two.csv", ".dot.txt", ".hidden/in.txt"):
        (work / path).write_text(path)
    (outside / "secret.txt").write_text("secret")
    os.symlink("..", work / "a" / "loop")
    os.symlink("../..", work / "a" / "b" / "loop")
    os.symlink(outside, work / "out")
    os.symlink(outside / "secret.txt", work / "leak.txt")
    os.symlink("top.txt", work / "alias.txt")
    return work


@pytest.mark.parametrize("patterns, expected", [
    (["**/*.txt"], ["a/b/one.txt", "alias.txt", "top.txt"]),
    (["*"], ["alias.txt", "top.txt"]),
    (["**"], ["a/b/one.txt", "a/two.csv", "alias.txt", "top.txt"]),
    (["a/*/*.txt", "a/*.csv"], ["a/b/one.txt", "a/two.csv"]),
    (["a/**/*", "./a/**/**/*.txt"], ["a/b/one.txt", "a/two.csv"]),
    ([".*", ".hidden/*"], [".dot.txt", ".hidden/in.txt"]),
    (["top.txt", "**/top.txt", "t?p.[tx]xt"], ["top.txt"]),
    (["out/*", "out/**", "a/loop/*.csv", "missing/*", "a/"], []),
])
def test_patterns_match_like_glob_without_following_directory_links(tree: Path, patterns: list[str], expected: list[str]):
    started = time.monotonic()
    found = match_output_files(tree, patterns)
    assert list(found) == expected
    assert time.monotonic() - started < 1, "symlink loops are not walked"
    assert all(tree in path.resolve().parents for path in found.values())
    if "alias.txt" in found:
        assert found["alias.txt"].resolve() == tree / "top.txt", "a file link inside the directory is kept"


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "a/../../*.txt"])
def test_a_glob_leaving_the_working_directory_is_refused(tree: Path, pattern: str):
    with pytest.raises(ApplicationError, match="stays in it") as raised:
        match_output_files(tree, [pattern])
    assert raised.value.type == "OutputFilesError" and raised.value.non_retryable


def test_matches_past_the_cap_fail_before_anything_is_copied(tmp_path: Path):
    for index in range(6):
        (tmp_path / f"{index}.txt").write_text("x")
    assert len(match_output_files(tmp_path, ["*.txt", "**/*.txt"], limit=6)) == 6, "a file matched twice counts once"
    with pytest.raises(ApplicationError, match="more than 5 files") as raised:
        match_output_files(tmp_path, ["*.txt"], limit=5)
    assert raised.value.type == "TooManyOutputFiles"


def stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def test_a_tree_deeper_than_the_recursion_limit_is_walked(tmp_path: Path):
    folder = tmp_path
    for _ in range(300):
        folder = folder / "d"
        folder.mkdir()
    (folder / "deep.txt").write_text("x")
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(stack_depth() + 100)  # a recursive walk of 300 levels fails now (the tree stays removable)
    try:
        found = match_output_files(tmp_path, ["**/*.txt"])
    finally:
        sys.setrecursionlimit(previous)
    assert list(found) == ["/".join(["d"] * 300) + "/deep.txt"]
