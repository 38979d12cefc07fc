"""A task run's log: its stdout, stderr and protocol logs in order, bounded in size.

It travels in the activity's result (or its failure's details), so it is kept in the run's
history beside the ledger and bounded well below Temporal's payload limits: the first HEAD_CHARS
and the last TAIL_CHARS of it, with one line saying how many lines were left out between them.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

HEAD_CHARS = 16 * 1024
TAIL_CHARS = 48 * 1024
LINE_CHARS = 4 * 1024
"""A longer line is cut (with a note of its full length)."""
ENTRY_OVERHEAD = 48
"""What an entry's timestamp and level add to its message in the payload, roughly."""
LIVE_LINES = 200
LIVE_CHARS = 32 * 1024
"""A heartbeat carries at most the last LIVE_LINES lines / LIVE_CHARS of the log (a reader that
missed more sees a gap note): heartbeat details are kept by the server, so they stay small."""


def _timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TaskLog:
    """Collects entries as they come (cheaply: formatting waits for `entries()`)."""

    def __init__(self, head_chars: int = HEAD_CHARS, tail_chars: int = TAIL_CHARS) -> None:
        self._head: list[tuple[float, str, str]] = []
        self._head_chars = 0
        self._head_full = False
        self._tail: deque[tuple[float, str, str]] = deque()
        self._tail_chars = 0
        self._dropped = 0
        self._head_limit = head_chars
        self._tail_limit = tail_chars
        self._live: deque[tuple[float, str, str]] = deque()
        self._live_chars = 0
        self._count = 0

    def add(self, level: str, message: str) -> None:
        if len(message) > LINE_CHARS:
            message = f"{message[:LINE_CHARS]}… ({len(message)} characters, cut)"
        entry = (time.time(), level, message)
        size = len(message) + ENTRY_OVERHEAD
        self._count += 1
        self._live.append(entry)
        self._live_chars += size
        while len(self._live) > LIVE_LINES or self._live_chars > LIVE_CHARS:
            self._live_chars -= len(self._live.popleft()[2]) + ENTRY_OVERHEAD
        if not self._head_full:
            if self._head_chars + size <= self._head_limit:
                self._head.append(entry)
                self._head_chars += size
                return
            self._head_full = True
        self._tail.append(entry)
        self._tail_chars += size
        while self._tail_chars > self._tail_limit and self._tail:
            dropped = self._tail.popleft()
            self._tail_chars -= len(dropped[2]) + ENTRY_OVERHEAD
            self._dropped += 1

    def entries(self) -> list[dict[str, Any]]:
        """Every kept entry as {timestamp, level, message}, a note where lines were left out."""
        kept = [*self._head]
        if self._dropped:
            at = self._tail[0][0] if self._tail else time.time()
            kept.append((at, "WARN", f"… {self._dropped} log lines left out (the log keeps its first "
                                     f"{self._head_limit // 1024} KiB and last {self._tail_limit // 1024} KiB) …"))
        kept.extend(self._tail)
        return [{"timestamp": _timestamp(at), "level": level, "message": message} for at, level, message in kept]

    def live_window(self) -> dict[str, Any]:
        """The last lines so far, for a heartbeat: {"log_count": lines logged in all, "log_from":
        the number of the first line here (0-based), "log_lines": [{timestamp, level, message}]}."""
        return {"log_count": self._count, "log_from": self._count - len(self._live),
                "log_lines": [{"timestamp": _timestamp(at), "level": level, "message": message}
                              for at, level, message in self._live]}
