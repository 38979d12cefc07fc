"""Output extractors applied on the worker, to the text a runnable produced (an http body, a
command's stdout): the one place every runnable activity calls (SPEC §4, `temporal_flows.expressions.extractors`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.exceptions import ApplicationError

from temporal_flows.expressions.extractors import ExtractionError, extract, parse_extractors

TEXT_LIMIT_BYTES = 1024 * 1024
"""Most text extractors are applied to (1 MiB); bigger text fails them rather than growing the worker."""


def apply_extractors(declared: list[dict[str, Any]], text: str, source: str, parsed: Any = None) -> dict[str, Any]:
    """The extracted values by name; a non-matching extractor fails the task (non-retryable:
    the task's own `retry` decides, SPEC §3.3)."""
    if not declared:
        return {}
    try:
        return extract(parse_extractors(declared), text, source, parsed)
    except ExtractionError as error:
        raise ApplicationError(str(error), type="ExtractorFailed", non_retryable=True) from None


class TextCapture:
    """Lines kept for extractors, up to `limit` bytes; past it `text()` fails the task clearly."""

    def __init__(self, source: str, limit: int = TEXT_LIMIT_BYTES) -> None:
        self.source = source
        self.limit = limit
        self._lines: list[str] = []
        self._size = 0
        self.overflowed = False

    def add(self, line: str) -> None:
        if self.overflowed:
            return
        self._size += len(line) + 1
        if self._size > self.limit:
            self.overflowed = True
            self._lines.clear()
            return
        self._lines.append(line)

    def text(self) -> str:
        if self.overflowed:
            raise ApplicationError(
                f"Output extractors apply to at most {self.limit // 1024} KiB of {self.source}; this task wrote more",
                type="ExtractorFailed", non_retryable=True)
        return "\n".join(self._lines)

    def watching(self, on_line: Callable[[str], "bool | None"]) -> Callable[[str], "bool | None"]:
        """`on_line` (a stdout callback of `run_supervised`) that also keeps every line it did not
        consume (protocol `::{json}::` lines are not the task's output text)."""

        def handle(line: str) -> "bool | None":
            consumed = on_line(line)
            if not consumed:
                self.add(line)
            return consumed

        return handle
