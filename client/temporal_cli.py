"""Find or obtain the Temporal CLI (`temporal`) binary: the one place that does.

Looks at $TEMPORAL_CLI, PATH and the tools dirs; failing that, downloads it via the temporalio SDK or
builds it once with Go. `python -m client.temporal_cli` prints its path (obtaining it if needed).
Running the dev server with it is `client.devserver`'s job.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

CLI_VERSION = "v1.5.1"
"""Newest CLI release that `go install` can build (v1.6+ carry a replace directive)."""
CLI_MODULE = "github.com/temporalio/cli/cmd/temporal"
EXE = "temporal.exe" if os.name == "nt" else "temporal"
SDK_DOWNLOAD_TIMEOUT = 30.0

HOW_TO_INSTALL = (
    "The Temporal CLI (`temporal`) was not found. Do one of:\n"
    "  - install it (https://docs.temporal.io/cli#install, e.g. `brew install temporal` or\n"
    "    `curl -sSf https://temporal.download/cli.sh | sh`) and put it on PATH;\n"
    "  - set TEMPORAL_CLI=/path/to/temporal;\n"
    f"  - install Go so tflow can build it once (`go install {CLI_MODULE}@{CLI_VERSION}`);\n"
    "  - or set TEMPORAL_ADDRESS=host:port to use an existing Temporal server instead."
)


class TemporalCliNotFound(RuntimeError):
    """No `temporal` executable could be found or obtained; the message says how to get one."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_data_dir() -> Path:
    """Where tflow keeps state: `$TFLOW_HOME`, else `$XDG_DATA_HOME/temporal-flows`, else ~/.local/share."""
    if home := os.environ.get("TFLOW_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "temporal-flows"


def project_root() -> Path | None:
    """The checkout holding pyproject.toml above this package; None for a non-editable install."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def tools_dir() -> Path:
    """Where an obtained CLI is put: `$TFLOW_TOOLS_DIR`, the checkout's .tools/bin, or the data dir."""
    if override := os.environ.get("TFLOW_TOOLS_DIR"):
        return Path(override).expanduser()
    root = project_root()
    return root / ".tools" / "bin" if root else default_data_dir() / "bin"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_temporal_cli(*, obtain: bool = True, log: Callable[[str], None] = _stderr) -> Path:
    """Path of the `temporal` CLI: $TEMPORAL_CLI, PATH, tools dirs; else download or build it once."""
    if configured := os.environ.get("TEMPORAL_CLI"):
        path = Path(configured).expanduser()
        if not path.is_file():
            raise TemporalCliNotFound(
                f"TEMPORAL_CLI is set to {configured!r}, but there is no file there. "
                "Point TEMPORAL_CLI at a `temporal` executable, or unset it to let tflow find one."
            )
        return path
    if on_path := shutil.which(EXE):
        return Path(on_path)
    dest = tools_dir()
    for candidate in (dest / EXE, Path.cwd() / ".tools" / "bin" / EXE):
        if _executable(candidate):
            return candidate
    if obtain:
        dest.mkdir(parents=True, exist_ok=True)
        with obtain_lock(dest):
            if _executable(dest / EXE):  # another process obtained it while we waited
                return dest / EXE
            got = _download_with_sdk(dest) or _build_with_go(dest, log)
            if got:
                return got
    raise TemporalCliNotFound(HOW_TO_INSTALL)


@contextlib.contextmanager
def obtain_lock(dest: Path) -> Iterator[None]:
    """Serialize downloads/builds into `dest` so two processes don't obtain the same tool twice."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(dest / ".obtain.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_SDK_DOWNLOAD = """
import asyncio, sys
from temporalio.testing import WorkflowEnvironment
async def main():
    env = await WorkflowEnvironment.start_local(download_dest_dir=sys.argv[1], dev_server_log_level="error")
    await env.shutdown()
asyncio.run(main())
"""


def _download_with_sdk(dest: Path) -> Path | None:
    """Let temporalio download its CLI build; in a child process so a hang or crash can't hurt us."""
    staging = Path(tempfile.mkdtemp(prefix=".sdk-download-", dir=dest))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SDK_DOWNLOAD, str(staging)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            proc.wait(timeout=SDK_DOWNLOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None
        found = sorted((p for p in staging.rglob("temporal*") if _executable(p)), key=lambda p: p.stat().st_mtime)
        if proc.returncode != 0 or not found:
            return None
        os.replace(found[-1], dest / EXE)
        return dest / EXE
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_with_go(dest: Path, log: Callable[[str], None]) -> Path | None:
    """`go install` the CLI into `dest`; None when Go is absent, an error with Go's output if it fails."""
    go = shutil.which("go")
    if not go:
        return None
    log(f"Building the Temporal CLI {CLI_VERSION} with Go into {dest} (only once; takes a few minutes)...")
    proc = subprocess.run(
        [go, "install", f"{CLI_MODULE}@{CLI_VERSION}"],
        env={**os.environ, "GOBIN": str(dest)}, cwd=dest,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )
    if proc.returncode != 0 or not _executable(dest / EXE):
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise TemporalCliNotFound(f"Building the Temporal CLI with Go failed (exit {proc.returncode}):\n{tail}\n\n{HOW_TO_INSTALL}")
    log(f"Built {dest / EXE}")
    return dest / EXE


def main() -> int:
    """`python -m client.temporal_cli`: print the CLI's path, obtaining it first if needed."""
    try:
        print(find_temporal_cli())
    except TemporalCliNotFound as err:
        _stderr(str(err))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
