"""The supervised subprocess runner, with real processes: exit codes, streaming, group kills, and
no survivors when the worker itself is SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from activities.processes import LineTail, run_supervised

ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """A pid that no longer exists, or is a zombie nobody reaped yet (it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 2.0) -> list[int]:
    """The pids still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if not gone(pid)]
        if not alive:
            return []
        time.sleep(0.02)
    return [pid for pid in pids if not gone(pid)]


async def read_pids(path: Path, timeout: float = 5.0) -> list[int]:
    """Pids a script wrote (atomically, via mv) to `path`."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was never written"
        await asyncio.sleep(0.02)
    return [int(word) for word in path.read_text().split()]


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


async def test_exit_codes() -> None:
    assert (await run_supervised(["true"])).exit_code == 0
    assert (await run_supervised(sh("exit 3"))).exit_code == 3
    assert (await run_supervised(sh("kill -TERM $$"))).exit_code == 128 + signal.SIGTERM


async def test_lines_are_streamed_in_order_per_stream() -> None:
    out: list[str] = []
    err: list[str] = []
    outcome = await run_supervised(
        sh("echo one; echo oops >&2; printf 'two\\r\\nthree'; echo again >&2"),
        on_stdout=out.append, on_stderr=err.append)
    assert out == ["one", "two", "three"]
    assert err == ["oops", "again"]
    assert outcome.stdout_tail == "one\ntwo\nthree"
    assert outcome.stderr_tail == "oops\nagain"


async def test_consumed_lines_stay_out_of_the_tail_and_tails_are_bounded() -> None:
    outcome = await run_supervised(sh("i=0; while [ $i -lt 120 ]; do echo line$i; echo ::$i; i=$((i+1)); done"),
                                   on_stdout=lambda line: line.startswith("::"))
    lines = outcome.stdout_tail.splitlines()
    assert lines == [f"line{i}" for i in range(70, 120)]


def test_line_tail_bounds_characters() -> None:
    tail = LineTail(max_lines=10, max_chars=20)
    for word in ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"]:
        tail.add(word)
    assert tail.text() == "cccccccccc"
    tail.add("x" * 50)
    assert tail.text() == "x" * 20


async def test_env_cwd_and_heartbeats(tmp_path: Path) -> None:
    beats: list[float] = []
    out: list[str] = []
    outcome = await run_supervised(sh('echo "$GREETING"; pwd; sleep 0.3'), cwd=str(tmp_path),
                                   env={**os.environ, "GREETING": "hi"}, on_stdout=out.append,
                                   heartbeat=lambda: beats.append(time.monotonic()), heartbeat_every=0.05)
    assert outcome.exit_code == 0
    assert out == ["hi", str(tmp_path)]
    assert len(beats) >= 4


async def test_first_heartbeat_comes_after_heartbeat_every() -> None:
    beats: list[float] = []
    assert (await run_supervised(sh("true"), heartbeat=lambda: beats.append(0), heartbeat_every=0.5)).exit_code == 0
    assert beats == [], "a short task sends no heartbeat"
    started = time.monotonic()
    await run_supervised(sh("sleep 0.65"), heartbeat=lambda: beats.append(time.monotonic() - started),
                         heartbeat_every=0.2)
    assert len(beats) == 3
    assert beats[0] >= 0.19


async def test_lines_split_across_chunks_and_long_lines() -> None:
    out: list[str] = []
    script = ("printf 'a'; sleep 0.05; printf 'b\\nc'; sleep 0.05; printf 'd\\n\\ne\\n'; "
              "printf 'caf\\303'; sleep 0.05; printf '\\251\\n'")
    await run_supervised(sh(script), on_stdout=out.append)
    assert out == ["ab", "cd", "", "e", "caf\u00e9"]


async def test_runs_in_its_own_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    await run_supervised(sh(f'echo "$PPID $$ $(cut -d" " -f5 /proc/$$/stat)" > {pidfile}'))
    supervisor, _shell, pgid = (int(w) for w in pidfile.read_text().split())
    assert pgid == supervisor != os.getpgid(0)


async def test_missing_program_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_supervised(["no-such-program-tflow"])
    with pytest.raises(FileNotFoundError):
        await run_supervised(["/bin/sh", "-c", "true"], cwd=str(tmp_path / "missing"))


async def test_callback_errors_surface_after_the_process_ends() -> None:
    def boom(line: str) -> None:
        raise RuntimeError(f"bad line {line}")

    with pytest.raises(RuntimeError, match="bad line x"):
        await run_supervised(sh("echo x; echo y"), on_stdout=boom)


async def test_leftover_background_jobs_are_killed_when_the_command_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    started = time.monotonic()
    outcome = await run_supervised(sh(f"sleep 30 & echo $! > {pidfile}; echo done"))
    assert outcome.exit_code == 0
    assert time.monotonic() - started < 2
    assert wait_gone([int(pidfile.read_text())]) == []


async def test_cancel_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = f'sleep 30 & echo "$PPID $$ $!" > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 30'
    task = asyncio.create_task(run_supervised(sh(script), grace=3))
    pids = await read_pids(pidfile)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2, "SIGTERM alone should have stopped sh and sleep"
    assert wait_gone(pids) == []


async def test_cancel_gives_the_command_its_grace(tmp_path: Path) -> None:
    pidfile, cleaned = tmp_path / "pids", tmp_path / "cleaned"
    script = (f"trap 'sleep 0.3; echo bye > {cleaned}; exit 1' TERM; "
              f'echo "$$" > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 30 & wait')
    task = asyncio.create_task(run_supervised(sh(script), grace=5))
    pids = await read_pids(pidfile)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.read_text() == "bye\n"
    assert wait_gone(pids) == []


async def test_cancel_kills_after_grace_when_sigterm_is_ignored(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = f"trap '' TERM; sh -c 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 30'"
    task = asyncio.create_task(run_supervised(sh(script), grace=0.5))
    pids = await read_pids(pidfile)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0.4 < time.monotonic() - started < 3
    assert wait_gone(pids) == []


PARENT = textwrap.dedent("""\
    import asyncio, sys
    from activities.processes import run_supervised
    pidfile = sys.argv[1]
    script = f'sleep 60 & echo "$PPID $$ $!" > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 60'
    asyncio.run(run_supervised(["/bin/sh", "-c", script]))
""")


def test_nothing_survives_a_sigkilled_worker(tmp_path: Path) -> None:
    """The worker's death closes the supervisor's lifeline; its watcher must take the grandchildren along."""
    pidfile = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pidfile)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists():
            assert parent.poll() is None, "the parent process died early"
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.02)
        supervisor, shell, sleeper = (int(w) for w in pidfile.read_text().split())
        assert not gone(sleeper)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone([supervisor, shell, sleeper]) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_line_longer_than_the_limit_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import activities.processes as processes

    monkeypatch.setattr(processes, "MAX_LINE_BYTES", 10)
    lines: list[str] = []
    splitter = processes._LineSplitter(lines.append, [])
    for chunk in [b"0123456", b"789abc", b"de\nxy", b"z\n"]:
        splitter.feed(chunk)
    splitter.flush()
    assert lines == ["0123456789abc", "de", "xyz"]


async def test_without_pidfds_asyncio_watches_the_supervisor_the_same_way(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    """The fallback for systems without pidfd_open: exit codes, streams, and a cancel's group kill."""
    import activities.processes as processes

    assert processes.pidfd_supported(), "this machine is expected to have pidfds (the main path)"
    monkeypatch.setattr(processes, "pidfd_supported", lambda: False)
    assert (await run_supervised(sh("exit 3"))).exit_code == 3
    assert (await run_supervised(sh("kill -TERM $$"))).exit_code == 128 + signal.SIGTERM
    out: list[str] = []
    outcome = await run_supervised(sh("echo one; echo oops >&2"), on_stdout=out.append)
    assert (out, outcome.stderr_tail) == (["one"], "oops")
    pidfile = tmp_path / "pids"
    script = f'sleep 30 & echo "$PPID $$ $!" > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 30'
    task = asyncio.create_task(run_supervised(sh(script), grace=3))
    pids = await read_pids(pidfile)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_gone(pids) == []


async def test_many_concurrent_tasks_leave_no_zombie_or_open_fd() -> None:
    """Every supervisor is reaped and every pipe and pidfd closed once its task is done."""
    fds_before = len(os.listdir("/proc/self/fd"))
    outcomes = await asyncio.gather(*(run_supervised(sh(f"echo {i}; echo e{i} >&2")) for i in range(60)))
    assert [o.stdout_tail for o in outcomes] == [str(i) for i in range(60)]
    assert [o.stderr_tail for o in outcomes] == [f"e{i}" for i in range(60)]
    await asyncio.sleep(0.2)
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2  # the lifeline pipe, opened once
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    assert [pid for pid in children if Path(f"/proc/{pid}/stat").exists()
            and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"] == []


async def test_a_shell_script_run_inline_by_the_supervisor(tmp_path: Path) -> None:
    """`inline_sh`: the supervising /bin/sh runs `sh -c SCRIPT` in a subshell of its own (one exec
    less); the script sees what `sh -c` gives it (no arguments, no `$!`, `$0` = /bin/sh, no lifeline
    on any fd), `set -e` and exit codes hold, and it runs in the task's own process group."""
    out: list[str] = []
    script = ('echo "args=$# first=[${1-}] last=[${!-}] zero=$0 child=[${child-}] watcher=[${watcher-}]"; '
              f'ls -l /proc/self/fd/ > {tmp_path / "fds"}; '
              f'cut -d" " -f5 /proc/self/stat > {tmp_path / "pgid"}; sleep 0.1 & wait; echo waited')
    outcome = await run_supervised(sh(script), on_stdout=out.append, inline_sh=True)
    assert outcome.exit_code == 0 and out == ["args=0 first=[] last=[] zero=/bin/sh child=[] watcher=[]", "waited"]
    assert int((tmp_path / "pgid").read_text()) == outcome.pid != os.getpgid(0)
    from activities.processes import lifeline_fd

    assert f"pipe:[{os.fstat(lifeline_fd()).st_ino}]" not in (tmp_path / "fds").read_text(), "no lifeline in the script"
    assert (await run_supervised(sh("set -e\nfalse\necho not reached"), inline_sh=True)).exit_code == 1
    assert (await run_supervised(sh("exit 7"), inline_sh=True)).exit_code == 7
    missing = await run_supervised(sh("true\nno-such-command-tflow"), inline_sh=True)
    assert missing.exit_code == 127 and missing.stderr_tail.startswith("/bin/sh: 2:")


async def test_an_inline_script_is_cancelled_with_its_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = f'sleep 30 & echo "$$ $!" > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 30'
    task = asyncio.create_task(run_supervised(sh(script), grace=3, inline_sh=True))
    pids = await read_pids(pidfile)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    assert wait_gone(pids) == []


def test_nothing_of_an_inline_script_survives_a_sigkilled_worker(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", PARENT.replace("script]))", "script], inline_sh=True))"),
                               str(pidfile)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists():
            assert parent.poll() is None, "the parent process died early"
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.02)
        worker, leader, sleeper = (int(w) for w in pidfile.read_text().split())
        assert worker == parent.pid and not gone(leader) and not gone(sleeper)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone([leader, sleeper]) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
