"""Every process a task starts dies with the task, also ones that left its process group (`setsid`,
a double fork, `nohup`, a forked subshell), in both of activities.containment's modes, with real
processes: after a normal end, a failure, a cancellation, and a SIGKILLed worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities import containment
from activities.processes import run_supervised
from tests.escapees import ESCAPES, escape_script, marked, marked_sleep, stop_subreaping, wait_marked, wait_unmarked

ROOT = Path(__file__).resolve().parents[2]
MODES = ("cgroup", "cgroup-domain", "token")
CGROUP_POOL = containment.cgroup_pool


def cgroups_usable() -> bool:
    CGROUP_POOL.cache_clear()
    return CGROUP_POOL() is not None


def domain_pool() -> containment.CgroupPool:
    """A pool of plain (domain) cgroups, what a worker uses where its cgroup cannot be a threaded
    domain: joined through `cgroup.procs`."""
    pool = CGROUP_POOL()
    assert pool is not None
    pool.remove_all()
    pool.base.mkdir()
    domain = containment.CgroupPool(pool.base, threaded=False)
    assert containment._probe(domain)
    return domain


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with threaded task cgroups (the default where cgroup v2 is writable), with
    domain ones, then with the token (cgroups turned off)."""
    domain = None
    if request.param == "token":
        monkeypatch.setenv(containment.CGROUPS_ENV, "off")
    elif not cgroups_usable():
        pytest.skip("cgroup v2 is not writable here (a root worker on most Linux hosts can write it)")
    elif request.param == "cgroup-domain":
        domain = domain_pool()
        monkeypatch.setattr(containment, "cgroup_pool", lambda: domain)
    else:
        assert CGROUP_POOL() is not None and CGROUP_POOL().threaded
    yield request.param
    if domain is not None:
        domain.remove_all()
    CGROUP_POOL.cache_clear()
    containment.become_subreaper.cache_clear()
    stop_subreaping()


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def test_the_escapes_do_escape_a_process_group_kill(tmp_path: Path) -> None:
    """The control: without containment, killing the task's group (what the worker did before)
    leaves the `setsid` one running, and every escapee outlives the script."""
    sleep, marker = marked_sleep(tmp_path)
    proc = subprocess.Popen(sh(escape_script(sleep)), start_new_session=True)
    try:
        assert proc.wait(timeout=15) == 0
        assert len(marked(marker, first=True)) == len(ESCAPES)
        os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.3)
        assert len(marked(marker, first=True)) == 1
    finally:
        wait_unmarked(marker, timeout=0)


@pytest.mark.parametrize("inline_sh", [True, False], ids=["inline", "exec"])
async def test_nothing_outlives_a_task_that_ends_normally(mode: str, inline_sh: bool, tmp_path: Path) -> None:
    sleep, marker = marked_sleep(tmp_path)
    outcome = await run_supervised(sh(escape_script(sleep) + "\necho started"), inline_sh=inline_sh)
    ended = time.monotonic()
    assert outcome.exit_code == 0 and outcome.stdout_tail == "started"
    assert wait_unmarked(marker) == [], f"marked processes still alive {time.monotonic() - ended:.1f}s after the end"


async def test_nothing_outlives_a_failed_task(mode: str, tmp_path: Path) -> None:
    sleep, marker = marked_sleep(tmp_path)
    outcome = await run_supervised(sh(escape_script(sleep) + "\nexit 3"), inline_sh=True)
    assert outcome.exit_code == 3
    assert wait_unmarked(marker) == []


async def test_nothing_outlives_a_cancelled_task(mode: str, tmp_path: Path) -> None:
    sleep, marker = marked_sleep(tmp_path)
    task = asyncio.create_task(run_supervised(sh(escape_script(sleep) + "\nsleep 1000"), inline_sh=True, grace=1))
    await asyncio.to_thread(wait_marked, marker, len(ESCAPES))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_unmarked(marker) == []


async def test_one_task_ending_leaves_a_running_task_alone(mode: str, tmp_path: Path) -> None:
    """Tasks at once: the one that ends kills only its own escapees (the token names the task)."""
    (first_sleep, first), (second_sleep, second) = marked_sleep(tmp_path), marked_sleep(tmp_path)
    release = tmp_path / "release"
    running = asyncio.create_task(run_supervised(
        sh(escape_script(first_sleep) + f"\nwhile [ ! -e {release} ]; do sleep 0.02; done"), inline_sh=True))
    try:
        await asyncio.to_thread(wait_marked, first, len(ESCAPES))
        assert (await run_supervised(sh(escape_script(second_sleep)), inline_sh=True)).exit_code == 0
        assert wait_unmarked(second) == []
        assert len(marked(first, first=True)) == len(ESCAPES), "the other task's processes were killed"
    finally:
        release.touch()
    assert (await running).exit_code == 0
    assert wait_unmarked(first) == []


async def test_orphans_that_end_by_themselves_leave_no_zombie(mode: str) -> None:
    """In token mode this process is the orphans' reaper: it must reap them, not keep zombies."""
    outcomes = await asyncio.gather(*(run_supervised(sh("(sleep 0.05 &) ; sleep 0.3"), inline_sh=True)
                                      for _ in range(5)))
    assert [outcome.exit_code for outcome in outcomes] == [0] * 5
    me = os.getpid()
    zombies = [pid for pid in Path(f"/proc/{me}/task/{me}/children").read_text().split()
               if (stat := Path(f"/proc/{pid}/stat")).exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"]
    assert zombies == []


def test_the_cgroup_mode_keeps_a_task_in_a_cgroup_of_its_own_and_reuses_it(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if not cgroups_usable():
        pytest.skip("cgroup v2 is not writable here")
    monkeypatch.delenv(containment.CGROUPS_ENV, raising=False)
    pool = containment.cgroup_pool()
    assert pool is not None
    seen: list[str] = []

    async def one() -> None:
        outcome = await run_supervised(sh("setsid cat /proc/self/cgroup"), on_stdout=seen.append, inline_sh=True)
        assert outcome.exit_code == 0

    async def several() -> None:
        for _ in range(5):
            await one()

    asyncio.run(several())
    cgroups = {line.split("::", 1)[1] for line in seen if line.startswith("0::")}
    assert len(cgroups) == 1, seen  # one after another: the same cgroup, reused
    [task_cgroup] = cgroups
    assert f"/tflow-worker-{os.getpid()}/task-" in task_cgroup
    assert len(list(pool.base.glob("task-*"))) <= 2  # the probe's and this task's (the same one, or two)


def test_a_task_scope_gives_the_token_only_in_token_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(containment.CGROUPS_ENV, "off")
    containment.cgroup_pool.cache_clear()
    try:
        scope = containment.task_scope()
        env = scope.environment({"A": "1"})
        assert env == {"A": "1", containment.TOKEN_ENV: scope.token}
        assert scope.supervisor_arg() == scope.token and scope.token.startswith(f"{os.getpid()}.")
        assert containment.task_scope().token != scope.token
    finally:
        containment.cgroup_pool.cache_clear()
        containment.become_subreaper.cache_clear()
        stop_subreaping()


WORKER = textwrap.dedent("""\
    import asyncio, sys
    from activities.processes import run_supervised
    asyncio.run(run_supervised(["/bin/sh", "-c", sys.argv[1] + "\\nsleep 1000"], inline_sh=True))
""")


def test_nothing_outlives_a_sigkilled_worker(mode: str, tmp_path: Path) -> None:
    """The supervisor's watcher kills the task's cgroup, or every process with its token."""
    sleep, marker = marked_sleep(tmp_path)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, escape_script(sleep)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_marked(marker, len(ESCAPES))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_unmarked(marker) == []
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
