"""A local S3-compatible server for the tests and for trying `--storage s3://...` on one machine:
SeaweedFS's `weed server -s3` (master, volume, filer and S3 gateway in one process). The one place
that finds or builds `weed` and runs it.

`weed` is looked up at $TFLOW_WEED, on PATH and in the tools dir (`client.temporal_cli.tools_dir`);
failing that it is built once with Go from the pinned module version. `python -m client.s3server`
prints its path (building it if needed); `make s3server` runs that.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from activities.processes import die_with_parent_command
from client.devserver import free_port, stop_process_group
from client.temporal_cli import obtain_lock, tools_dir

WEED_MODULE = "github.com/seaweedfs/seaweedfs"
WEED_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
"""The SeaweedFS module version the Go module proxy serves that builds with this machine's Go (1.26)."""
EXE = "weed"
BUILD_TIMEOUT_S = 40 * 60.0
START_ATTEMPTS = 3
"""Ports are picked free, then bound by the server a moment later: a start that loses a race is retried."""

HOW_TO_INSTALL = (
    "SeaweedFS's `weed` (the local S3-compatible server the S3 storage tests use) was not found. Do one of:\n"
    "  - put a `weed` executable on PATH, or set TFLOW_WEED=/path/to/weed;\n"
    f"  - install Go 1.26 or newer and run `make s3server` (it builds {WEED_MODULE}/weed at {WEED_VERSION} once)."
)


class S3ServerNotFound(RuntimeError):
    """No `weed` executable could be found or built; the message says how to get one."""


class S3ServerError(RuntimeError):
    """The server did not start or answer; the message carries its log's tail."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_weed(*, obtain: bool = True, log: Callable[[str], None] = _stderr) -> Path:
    """Path of `weed`: $TFLOW_WEED, PATH, the tools dir; else built once with Go (`obtain`)."""
    if configured := os.environ.get("TFLOW_WEED"):
        path = Path(configured).expanduser()
        if not _executable(path):
            raise S3ServerNotFound(f"TFLOW_WEED is set to {configured!r}, which is not an executable file.")
        return path
    if on_path := shutil.which(EXE):
        return Path(on_path)
    dest = tools_dir()
    if _executable(dest / EXE):
        return dest / EXE
    if not obtain:
        raise S3ServerNotFound(HOW_TO_INSTALL)
    dest.mkdir(parents=True, exist_ok=True)
    with obtain_lock(dest):
        if not _executable(dest / EXE):  # another process may have built it while we waited
            _build_with_go(dest, log)
    return dest / EXE


def _build_with_go(dest: Path, log: Callable[[str], None]) -> None:
    """Download the module, then build `./weed` inside it. Not `go install module/weed@version`:
    the module's go.mod has a replace directive, which `go install` refuses for a module it is not
    inside; building in the downloaded module uses its go.mod and go.sum as they are."""
    go = shutil.which("go")
    if not go:
        raise S3ServerNotFound(HOW_TO_INSTALL)
    log(f"Building SeaweedFS (weed) {WEED_VERSION} with Go into {dest} (only once; takes several minutes)...")
    download = _go(go, ["mod", "download", "-json", f"{WEED_MODULE}@{WEED_VERSION}"], dest)
    module_dir = json.loads(download.stdout)["Dir"]
    partial = dest / f".{EXE}.building"
    _go(go, ["build", "-C", module_dir, "-trimpath", "-ldflags=-s -w", "-o", str(partial), "./weed"], dest)
    os.replace(partial, dest / EXE)
    log(f"Built {dest / EXE}")


def _go(go: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `go args...`; S3ServerNotFound with Go's last lines when it fails."""
    try:
        done = subprocess.run([go, *args], cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise S3ServerNotFound(f"`go {' '.join(args)}` took more than {BUILD_TIMEOUT_S:.0f} s\n\n{HOW_TO_INSTALL}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-30:])
        raise S3ServerNotFound(f"`go {' '.join(args)}` failed (exit {done.returncode}):\n{tail}\n\n{HOW_TO_INSTALL}")
    return done


@dataclass(kw_only=True)
class S3Server:
    """One `weed server -s3` child process on loopback with one identity and one bucket; use it as
    a context manager. Its data lives in `data_dir` (removed by nobody: give it a temporary one)."""

    data_dir: Path
    bucket: str = "tflow"
    access_key: str = "tflow-tests"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    region: str = "us-east-1"
    weed: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "weed.log"

    def environment(self) -> dict[str, str]:
        """The AWS settings a worker needs to use this server (`activities.storage.s3`)."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}

    def command(self, ports: dict[str, int]) -> list[str]:
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "tflow", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        config.chmod(0o600)
        flags = {
            "dir": self.data_dir / "data", "ip": self.host, "ip.bind": self.host, "filer": "true", "s3": "true",
            "s3.config": config, "s3.autoCreateBucket": "false", "s3.port.iceberg": 0, "s3.port.lance": 0,
            "master.volumeSizeLimitMB": 64, "volume.max": 0, "volume.preStopSeconds": 0, **ports,
        }
        return [str(self.weed), "server", *(f"-{name}={value}" for name, value in flags.items())]

    def start(self, timeout: float = 90.0) -> S3Server:
        """Start the server, wait until it answers S3 and create the bucket."""
        self.weed = self.weed or find_weed(obtain=False)
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            names = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                     "filer.port.grpc", "s3.port", "s3.port.grpc")
            ports = {name: free_port(self.host) for name in names}
            self.port = ports["s3.port"]
            with open(self.log_file, "ab") as out:
                self._proc = subprocess.Popen(die_with_parent_command(self.command(ports), "KILL"), stdin=subprocess.DEVNULL,
                                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                self._wait_for_bucket(timeout)
                return self
            except S3ServerError:
                exited = self._proc is not None and self._proc.poll() is not None
                self.stop()
                if not exited or attempt == START_ATTEMPTS:
                    raise
        return self

    def _wait_for_bucket(self, timeout: float) -> None:
        """Ready = the bucket could be created (or exists): the gateway, the filer and a volume answer."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise S3ServerError(f"weed exited (code {self._proc and self._proc.returncode}) while starting:\n{self.log_tail()}")
            try:
                with contextlib.suppress(ClientError):
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key=".tflow-ready", Body=b"")  # a volume takes writes too
                return
            except (BotoCoreError, ClientError) as error:
                last = error
            time.sleep(0.2)
        raise S3ServerError(f"weed's S3 gateway at {self.endpoint} was not ready after {timeout:.0f} s "
                            f"(last error: {last}):\n{self.log_tail()}")

    def client(self):  # type: ignore[no-untyped-def] - a boto3 S3 client
        """A boto3 S3 client of this server (for tests that look at or change the bucket)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            region_name=self.region, config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=20,
                                                   retries={"max_attempts": 1}))

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.is_file():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after `timeout`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc, timeout)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    """`python -m client.s3server`: print weed's path, building it first if needed (exit 3 if it cannot)."""
    try:
        print(find_weed())
    except S3ServerNotFound as error:
        _stderr(str(error))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
