"""Output extractors applied on the worker, to the text a runnable produced (an http body, a
command's stdout): the one place every runnable activity calls (SPEC §4, `temporal_flows.expressions.extractors`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.bounds import check_value, json_loads, too_deep
from temporal_flows.expressions.extractors import ExtractionError, extract, parse_extractors

TEXT_LIMIT_BYTES = 1024 * 1024
"""Most text extractors are applied to (1 MiB); bigger text fails them rather than growing the worker."""


def apply_extractors(declared: list[dict[str, Any]], text: str, source: str, parsed: Any = None) -> dict[str, Any]:
    """The extracted values by name; a non-matching extractor fails the task (non-retryable:
    the task's own `retry` decides, SPEC §3.3). The JSON they read and what they find stay within
    `activities.bounds` (OutputTooDeep, ResultTooLarge); `parsed` is already bounded by the caller."""
    if not declared:
        return {}
    extractors = parse_extractors(declared)
    what = f"The {source} read by output extractors"
    if parsed is None and any(extractor.type != "text" for extractor in extractors):
        with contextlib.suppress(ValueError):  # not JSON: the extractor says so in its own words
            parsed = json_loads(text, what)
    try:
        found = extract(extractors, text, source, parsed)
    except ExtractionError as error:
        raise ApplicationError(str(error), type="ExtractorFailed", non_retryable=True) from None
    except RecursionError:  # a JMESPath expression nesting its result past Python's limit
        raise too_deep(f"What output extractors found in the {source}") from None
    check_value(found, f"What output extractors found in the {source}", wrapping=1)
    return found


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
