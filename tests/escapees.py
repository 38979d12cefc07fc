"""Processes that try to outlive their task, found by a unique marker in their argv (via /proc)."""

from __future__ import annotations

import ctypes
import os
import time
import uuid
from pathlib import Path

ESCAPES = ("setsid", "double-fork", "nohup", "forking-loop")


def marked_sleep(folder: Path) -> tuple[Path, str]:
    """A `sleep` whose argv[0] carries a marker unique to this call: (path, marker)."""
    marker = f"tflow-escapee-{uuid.uuid4().hex[:12]}"
    path = folder / marker
    path.symlink_to("/bin/sleep")
    return path, marker


def escape_script(sleep: Path) -> str:
    """Shell lines starting one `sleep 1000` per way out of a process group (see ESCAPES): `setsid`,
    a double fork, `nohup` with its output redirected, and a forked subshell that keeps starting
    sleeps (no exec: it has no environment of its own); then waits until all four run."""
    return "\n".join([
        f"setsid {sleep} 1000 &",
        f"({sleep} 1000 &) &",
        f"nohup {sleep} 1000 >/dev/null 2>&1 &",
        f"(while :; do {sleep} 1000; done &)",
        f'while [ "$(pgrep -fc "^{sleep} ")" -lt 4 ]; do sleep 0.02; done',
    ])


def marked(marker: str, first: bool = False) -> list[int]:
    """Live (not zombie) processes whose argv (only argv[0] with `first`) holds `marker`: with it the
    sleeps, without it also the shells whose script names them."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if first:
            cmdline = cmdline.split(b"\0")[0]
        if marker.encode() in cmdline and state not in ("Z", "X") and b"pgrep" not in cmdline:
            found.append(int(entry.name))
    return found


def wait_unmarked(marker: str, timeout: float = 2.0) -> list[int]:
    """The marked processes still alive after `timeout` seconds (killed then, so none leaks)."""
    deadline = time.monotonic() + timeout
    while (alive := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in alive:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return alive


def wait_marked(marker: str, count: int, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(alive := marked(marker, first=True)) < count:
        assert time.monotonic() < deadline, f"only {len(alive)} of {count} marked processes started"
        time.sleep(0.02)
    return alive


def stop_subreaping() -> None:
    """Undo PR_SET_CHILD_SUBREAPER on this (test) process."""
    ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)
