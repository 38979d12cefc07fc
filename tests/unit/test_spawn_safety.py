"""Spawning task processes (and the dev server) runs no Python between fork and exec, and the
die-with-the-worker guarantees hold without it: real processes, the tasks' lifeline pipe, a real
`setpriv` (for the dev server), a real Temporal binary."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import activities.processes as processes
from activities.processes import (EXEC_GUARD_SCRIPT, SUPERVISOR_SCRIPT, die_with_parent_command, pdeathsig_prefix,
                                  run_supervised, setpriv_path)

ROOT = Path(__file__).resolve().parents[2]
TEMPORAL = ROOT / ".tools" / "bin" / "temporal"


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 3.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return []
        time.sleep(0.02)
    return [pid for pid in pids if not gone(pid)]


def run_python(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh interpreter in its own session; on timeout kill the whole session
    (a child hung between fork and exec included) and return code None."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, None, out, err)  # type: ignore[arg-type]


HOSTILE = textwrap.dedent("""\
    # A worker-like process: busy threads, one of them holding a lock for good, and an at-fork hook
    # that needs that lock. Python code running in a forked child (as preexec_fn forces) runs the
    # hook and hangs forever, like the after-fork cleanup did once in ~12,000 launches.
    import asyncio, os, subprocess, sys, threading, time
    held = threading.Lock()
    held.acquire()
    marker = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def after_fork_in_child():
        os.write(marker, b"python ran in a forked child\\n")
        held.acquire()

    os.register_at_fork(after_in_child=after_fork_in_child)

    def busy():  # holds a lock most of the time, mostly without the GIL (like I/O under a lock)
        lock = threading.Lock()
        while True:
            with lock:
                sum(range(200))
                time.sleep(0.0002)

    for _ in range(3):
        threading.Thread(target=busy, daemon=True).start()

    if sys.argv[2] == "control":  # what the test guards against: must hang
        subprocess.Popen(["/bin/true"], preexec_fn=lambda: None).wait()
        sys.exit(0)

    from activities.processes import die_with_parent_command, run_supervised

    async def main():
        for _ in range(5):
            outcomes = await asyncio.gather(*(run_supervised(["/bin/sh", "-c", f"echo {i}"])
                                              for i in range(40)))
            assert all(outcome.exit_code == 0 for outcome in outcomes), outcomes
        for _ in range(10):  # the dev server's spawn
            assert subprocess.Popen(die_with_parent_command(["/bin/true"]), start_new_session=True).wait() == 0
        print("ok")

    asyncio.run(main())
""")


def test_spawns_survive_a_process_whose_forked_python_would_hang(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    result = run_python(HOSTILE, str(marker), "supervised", timeout=60)
    assert result.returncode == 0, f"hung or failed: {result.stderr[-2000:]}"
    assert result.stdout.strip() == "ok"
    assert not marker.exists() or marker.read_text() == "", "Python code ran between fork and exec"


def test_the_hostile_process_does_catch_preexec_fn(tmp_path: Path) -> None:
    """The control: with a preexec_fn the same process hangs, so the test above has teeth."""
    marker = tmp_path / "marker"
    result = run_python(HOSTILE, str(marker), "control", timeout=3)
    assert result.returncode is None, "a preexec_fn spawn should have hung on the held lock"
    assert "python ran in a forked child" in marker.read_text()


async def test_no_spawn_passes_preexec_fn(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, object]] = []
    real_init = subprocess.Popen.__init__

    def recording_init(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> None:
        seen.append(kwargs)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "__init__", recording_init)
    assert (await run_supervised(["/bin/sh", "-c", "true"])).exit_code == 0
    assert subprocess.Popen(die_with_parent_command(["/bin/true"])).wait() == 0
    assert len(seen) >= 2
    assert all(kwargs.get("preexec_fn") is None for kwargs in seen)


def test_the_supervisor_kills_its_group_when_its_parent_is_not_the_expected_one(tmp_path: Path) -> None:
    """The race guard: the worker died before the supervisor started (it was reparented)."""
    ran = tmp_path / "ran"
    supervisor = subprocess.Popen(
        ["/bin/sh", "-c", SUPERVISOR_SCRIPT, "tflow-supervisor", "1", "-", "/bin/sh", "-c", f"touch {ran}; sleep 30"],
        start_new_session=True)
    assert supervisor.wait(timeout=5) == -signal.SIGKILL, "the group (itself included) must be SIGKILLed"
    assert not ran.exists(), "the command must not run"


def test_the_supervisor_runs_the_command_under_its_expected_parent(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    read_end, write_end = os.pipe()
    try:
        supervisor = subprocess.Popen(
            ["/bin/sh", "-c", SUPERVISOR_SCRIPT, "tflow-supervisor", str(os.getpid()), "-", "/bin/sh", "-c",
             f"touch {ran}; exit 7"], stdin=read_end, start_new_session=True)
        assert supervisor.wait(timeout=5) == 7
        assert ran.exists()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_the_lifeline_closing_kills_the_group_even_during_a_sigterm_grace(tmp_path: Path) -> None:
    """The worker's death is its lifeline's end-of-file; a SIGTERM (a cancel's grace period) before
    that must not disarm the watcher. The command sees neither the lifeline nor an extra fd."""
    pidfile, fds = tmp_path / "pids", tmp_path / "fds"
    script = (f"trap '' TERM; ls -l /proc/$$/fd/ > {fds}; readlink /proc/$$/fd/0 >> {fds}; "
              f'sleep 60 & echo "$PPID $$ $!" > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; '
              "wait")
    read_end, write_end = os.pipe()
    supervisor = subprocess.Popen(
        ["/bin/sh", "-c", SUPERVISOR_SCRIPT, "tflow-supervisor", str(os.getpid()), "-", "/bin/sh", "-c", script],
        stdin=read_end, stdout=subprocess.DEVNULL, start_new_session=True)
    lifeline = f"pipe:[{os.fstat(read_end).st_ino}]"
    os.close(read_end)
    try:
        deadline = time.monotonic() + 5
        while not pidfile.exists():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        leader, shell, sleeper = (int(w) for w in pidfile.read_text().split())
        assert leader == supervisor.pid
        seen = fds.read_text()
        assert lifeline not in seen and seen.splitlines()[-1] == "/dev/null", "the command must not hold the lifeline"
        os.killpg(supervisor.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert supervisor.poll() is None and not gone(shell) and not gone(sleeper)
        os.close(write_end)
        write_end = -1
        assert supervisor.wait(timeout=3) == -signal.SIGKILL
        assert wait_gone([shell, sleeper]) == []
    finally:
        if write_end >= 0:
            os.close(write_end)
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()


def test_a_supervisor_started_after_its_worker_died_runs_nothing(tmp_path: Path) -> None:
    """Even with the expected parent, a lifeline already at end-of-file kills the group at once."""
    ran = tmp_path / "ran"
    read_end, write_end = os.pipe()
    os.close(write_end)
    try:
        supervisor = subprocess.Popen(
            ["/bin/sh", "-c", SUPERVISOR_SCRIPT, "tflow-supervisor", str(os.getpid()), "-", "/bin/sh", "-c",
             f"sleep 0.5; touch {ran}"], stdin=read_end, start_new_session=True)
        assert supervisor.wait(timeout=5) == -signal.SIGKILL
        time.sleep(0.7)
        assert not ran.exists()
    finally:
        os.close(read_end)


def test_the_exec_guard_refuses_an_unexpected_parent(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    guard = subprocess.run(["/bin/sh", "-c", EXEC_GUARD_SCRIPT, "tflow-guard", "1", "touch", str(ran)], timeout=5)
    assert guard.returncode == 125
    assert not ran.exists()
    guard = subprocess.run(["/bin/sh", "-c", EXEC_GUARD_SCRIPT, "tflow-guard", str(os.getpid()), "touch", str(ran)],
                           timeout=5)
    assert guard.returncode == 0 and ran.exists()


def test_setpriv_is_used_here() -> None:
    assert setpriv_path() is not None, "util-linux setpriv is expected on the test machines"
    assert pdeathsig_prefix("HUP") == (setpriv_path(), "--pdeathsig", "HUP", "--")


DIES = textwrap.dedent("""\
    import subprocess, sys
    from activities.processes import die_with_parent_command
    proc = subprocess.Popen(die_with_parent_command(["sleep", "60"]), start_new_session=True)
    print(proc.pid, flush=True)
    proc.wait()
""")


def test_a_die_with_parent_command_dies_with_a_sigkilled_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", DIES], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child}/comm").read_text().strip() != "sleep":  # exec'd, same pid
            assert time.monotonic() < deadline, "the wrapper never exec'd the command"
            time.sleep(0.02)
        assert os.getpgid(child) == child
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone([child]) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


DEVSERVER = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from client.devserver import DevServer
    server = DevServer(port=0, ui_port=0, db_filename=None, headless=True, cli=Path(sys.argv[1]))
    server.start()
    print(server.pid, flush=True)
    sys.stdin.read()
""")


@pytest.mark.skipif(not TEMPORAL.exists(), reason="no Temporal dev server binary in .tools/bin")
def test_the_dev_server_dies_with_a_sigkilled_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", DEVSERVER, str(TEMPORAL)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        server = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert Path(f"/proc/{server}/comm").read_text().strip() == "temporal"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone([server], timeout=5) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_without_setpriv_tasks_still_run_with_one_warning(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(processes.shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setattr(processes, "SETPRIV_FALLBACKS", ("/nonexistent/setpriv",))
    setpriv_path.cache_clear()
    caplog.set_level(logging.WARNING, logger=processes.__name__)
    try:
        assert pdeathsig_prefix("HUP") == ()
        assert die_with_parent_command(["true"]) == ["true"]
        outcome = asyncio.run(run_supervised(["/bin/sh", "-c", "echo fine"]))
        assert (outcome.exit_code, outcome.stdout_tail) == (0, "fine")
        warnings = [record for record in caplog.records if "setpriv" in record.getMessage()]
        assert len(warnings) == 1
        assert "will NOT die" in warnings[0].getMessage()
    finally:
        setpriv_path.cache_clear()
