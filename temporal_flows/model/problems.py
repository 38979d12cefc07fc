"""Problems found in a flow before it runs: each names the file, line, column and what was expected."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FlowError(Exception):
    """A flow that cannot run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def did_you_mean(word: str, candidates: list[str]) -> str:
    """` (did you mean `x`?)` for the closest candidate, or nothing when none is close."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


@dataclass(frozen=True)
class EntryProblem:
    """A problem in one entry of a flow's declaration list (`inputs`, `outputs`), found by the
    module that owns the declarations; the dialect turns it into a `Problem` at the right place."""

    index: int
    """Which entry of the list."""
    key: str | None
    """The snake_case key at fault, or None for the entry as a whole."""
    message: str
    at_key: bool = False
    """Point at the key itself (an unknown key) rather than at its value."""
