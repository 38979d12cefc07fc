"""SPEC §3.4 on a real server, row by row: `wait_all`, `fail_fast`, `best_effort`, `race`, the group
`timeout`, and `on_success`/`on_error` handlers, each at the top level of a flow and nested inside
other groups (a `sequential` inside a `foreach` item; an `if` branch inside a `dag`), plus seed 002's
`parallel-task-example` under each of the four strategies.

Every scenario is a list of tasks written once and placed by a `Placement`: at the top level, or
nested. The "nested" variant of a test runs the scenario in both nestings at once. Shell tasks
write `start`/`end` epochs, pids and failure times to files of their own directory (`@DIR@`), so
the tests measure overlap, promptness and killed processes, not only states.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from temporalio.client import Client

from tests.support import duration, peak_concurrency, pid_alive, run_flow, task_run, write_flow

# -- placements: the same tasks at the top level or nested -------------------------------------


@dataclass(frozen=True)
class Placement:
    name: str
    head: str
    """The flow's `tasks:` up to where the scenario's list goes."""
    indent: int
    foot: str = ""
    """What closes the nesting after the scenario's list."""
    wrappers: tuple[str, ...] = ()
    """Task ids of the enclosing groups (their task runs take the scenario's outcome)."""
    item: str | None = None
    """The for-each item the scenario runs for (`outputs.<id>[<item>]`)."""

    def outputs(self, task_id: str) -> str:
        """How a template of the scenario addresses `outputs.<task_id>` (SPEC §3.6)."""
        return f"outputs.{task_id}" if self.item is None else f"outputs.{task_id}['{self.item}']"

    def flow(self, flow_id: str, tasks: str, extra: str = "") -> str:
        body = textwrap.indent(textwrap.dedent(tasks).strip("\n") + "\n", " " * self.indent)
        tail = "  - id: tail\n    type: return\n    format: tail\n"
        return f"id: {flow_id}\nnamespace: tests.parallel_spec\ntasks:\n{self.head}{body}{self.foot}{tail}{textwrap.dedent(extra)}"


TOP = Placement("top", "", 2)
IN_FOREACH = Placement(
    "foreach-sequential",
    "  - id: outer\n    type: foreach\n    values: [\"only\"]\n    tasks:\n"
    "      - id: inner\n        type: sequential\n        tasks:\n",
    10,
    wrappers=("outer", "inner"),
    item="only",
)
IN_DAG_IF = Placement(
    "dag-if",
    "  - id: outer\n    type: dag\n    tasks:\n"
    "      - task:\n          id: first\n          type: return\n          format: go\n"
    "      - task:\n          id: inner\n          type: if\n"
    "          condition: \"{{ outputs.first.value == 'go' }}\"\n          then:\n",
    12,
    foot="        dependsOn: [first]\n",
    wrappers=("outer", "inner"),
)

PLACEMENTS = {"top": (TOP,), "nested": (IN_FOREACH, IN_DAG_IF)}


@pytest.fixture(params=["top", "nested"])
def placements(request: pytest.FixtureRequest) -> tuple[Placement, ...]:
    return PLACEMENTS[request.param]


@dataclass
class Run:
    """One scenario run in one placement: its folder (`@DIR@`) and its result."""

    where: Placement
    dir: Path
    result: dict[str, Any]

    def tr(self, task_id: str) -> dict[str, Any]:
        return task_run(self.result, task_id)

    def ids(self) -> list[str]:
        return [run["task_id"] for run in self.result["task_runs"]]

    def value(self, task_id: str) -> Any:
        return self.tr(task_id)["outputs"]["value"]

    def input_of(self, task_id: str) -> dict[str, Any]:
        """The `input` a `return` target with `format: "{{ input | tojson }}"` received."""
        return json.loads(self.value(task_id))

    def epoch(self, name: str) -> float:
        return float((self.dir / name).read_text())

    def expect_run(self, state: str) -> None:
        """The run's state, the enclosing groups' states, and the flow's last task (`tail`), which
        runs unless the run failed."""
        assert self.result["state"] == state, f"run state: {self.result['state']} (error: {self.result['error']})"
        for wrapper in self.where.wrappers:
            assert self.tr(wrapper)["state"] == state, f"the enclosing `{wrapper}` should be {state}"
        assert ("tail" in self.ids()) == (state != "FAILED"), "the flow's next top-level task runs unless the run FAILED"


async def run_scenario(
    client: Client, queue: str, tmp_path: Path, where: Placement, name: str, tasks: str, extra: str = "", **options: Any
) -> Run:
    folder = tmp_path / f"{name}-{where.name}"
    folder.mkdir()
    # `@@` joins parts written at different indentations (a scenario and HANDLER_TARGETS).
    listing = "".join(textwrap.dedent(part).strip("\n") + "\n" for part in tasks.split("@@\n"))
    text = where.flow(name, listing, extra).replace("@DIR@", str(folder)).replace("@OUTPUTS_P@", where.outputs("p"))
    result = await run_flow(client, write_flow(folder, text), queue, **options)
    return Run(where, folder, result)


async def each(placements: tuple[Placement, ...], check: Callable[[Placement], Awaitable[None]]) -> None:
    """`check` in every placement at once; a failure says in which placement."""

    async def one(where: Placement) -> None:
        try:
            await check(where)
        except AssertionError as error:
            raise AssertionError(f"[{where.name}] {error}") from error

    await all_of(one(where) for where in placements)


async def all_of(checks: Any) -> None:
    """Run `checks` concurrently and let every one finish (so none is cut short while its flow
    still runs); then raise the first failure."""
    outcomes = await asyncio.gather(*checks, return_exceptions=True)
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise errors[0]


# -- measuring ----------------------------------------------------------------------------------


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def death_of(pid_file: Path, timeout: float = 60) -> float:
    """Wall-clock time at which the process whose pid `pid_file` holds is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text.isdigit():
            pid = int(text)
            while pid_alive(pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not pid_alive(pid):
                return time.time()
            break
        await asyncio.sleep(0.02)
    raise AssertionError(f"the process of {pid_file.name} is still running (or never started)")


class Watch:
    """Watches pid files while a scenario runs; kills what is left at the end (our own sleeps)."""

    def __init__(self) -> None:
        self.deaths: dict[Path, asyncio.Task[float]] = {}

    def __call__(self, pid_file: Path) -> None:
        self.deaths[pid_file] = asyncio.ensure_future(death_of(pid_file))

    async def died_at(self, pid_file: Path, within: float = 8) -> float:
        try:
            return await asyncio.wait_for(asyncio.shield(self.deaths[pid_file]), within)
        except asyncio.TimeoutError:
            raise AssertionError(f"the process of {pid_file.name} outlived its task by more than {within} s") from None

    def cleanup(self) -> None:
        for pid_file, task in self.deaths.items():
            task.cancel()
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def watch() -> Any:
    watcher = Watch()
    yield watcher
    watcher.cleanup()


PROMPT = 3.5
"""Seconds within which a cancellation must have taken effect ("about 3 s"): it reaches a running
task on its next heartbeat (about a second, up to two on a loaded 2-core machine), and the group
then waits for the acknowledgement."""

TIMER_TICK = 1.0
"""The dev server fires durable timers on a tick of about a second: a PT1S timer fires 1-2 s after it
was started, and the cancellation's clock starts then."""

SLEEPER = "sleep 30 & echo $! > @DIR@/{name}.pid; wait $!"
"""A command that sleeps 30 s and records its pid."""


def sleeper(name: str) -> str:
    return SLEEPER.format(name=name)


def stubborn(name: str, linger: float) -> str:
    """A command that sleeps 30 s, but on SIGTERM takes `linger` seconds to exit; it logs `start`
    and, last thing before it exits, `end` epochs to `@DIR@/<name>.log`."""
    log = f"@DIR@/{name}.log"
    return (
        f"trap 'sleep {linger}; echo end $(date +%s.%N) >> {log}; exit 0' TERM; "
        f"echo start $(date +%s.%N) >> {log}; sleep 30 & echo $! > @DIR@/{name}.pid; wait $!"
    )


async def logged(run: "Run", name: str, event: str, within: float = 10) -> float:
    """The epoch a `stubborn` command logged for `event` (start/end), waiting for it at most `within` s."""
    deadline = time.monotonic() + within
    while True:
        path = run.dir / f"{name}.log"
        lines = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
        found = [float(stamp) for kind, stamp in lines if kind == event]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"{name} never logged `{event}`"
        await asyncio.sleep(0.05)


# == 1. wait_all ================================================================================


async def test_wait_all_runs_every_child_after_an_early_failure(client: Client, worker: str, tmp_path: Path, placements):
    """FAILED: the group waits for every child, a child queued behind `max_workers` still starts
    after the failure, and the output map is in declaration order with null for the failure."""

    async def check(where: Placement) -> None:
        run = await run_scenario(client, worker, tmp_path, where, "waitallfail", """
            - id: p
              type: parallel
              strategy: wait_all
              max_workers: 2
              tasks:
                - id: slow
                  type: commands
                  commands:
                    - echo start $(date +%s.%N) >> @DIR@/spans.log
                    - sleep 0.8
                    - echo '::{"outputs":{"n":"slow"}}::'
                    - echo end $(date +%s.%N) >> @DIR@/spans.log
                - id: fails
                  type: commands
                  commands:
                    - echo start $(date +%s.%N) >> @DIR@/spans.log
                    - echo end $(date +%s.%N) >> @DIR@/spans.log
                    - echo 'fails on purpose' >&2
                    - exit 3
                - id: later
                  type: commands
                  commands:
                    - echo start $(date +%s.%N) >> @DIR@/spans.log
                    - sleep 0.1
                    - echo '::{"outputs":{"n":"later"}}::'
                    - echo end $(date +%s.%N) >> @DIR@/spans.log
            - id: after
              type: return
              format: never
            """, extra="""
            errors:
              - id: report
                type: return
                format: "{% for k in tasks.p.output %}{{ k }} {% endfor %}|{{ tasks.p.output | tojson }}"
            """)
        run.expect_run("FAILED")
        assert run.tr("p")["state"] == "FAILED"
        assert run.tr("fails")["state"] == "FAILED"
        assert run.tr("slow")["state"] == "SUCCESS", "wait_all keeps running siblings on a failure"
        later = run.tr("later")
        assert later["state"] == "SUCCESS", "a child queued behind the limit still runs after a failure"
        assert epoch(later["started_at"]) >= epoch(run.tr("fails")["ended_at"]), "`later` waited for a free slot"
        assert "after" not in run.ids()
        assert peak_concurrency(run.dir / "spans.log") <= 2
        assert run.result["error"]["task_id"] == "fails"
        keys, output = run.value("report").split("|", 1)
        assert keys.split() == ["slow", "fails", "later"], "the output map is ordered by declaration, not by completion"
        assert json.loads(output) == {"slow": run.tr("slow")["outputs"], "fails": None, "later": run.tr("later")["outputs"]}
        assert json.loads(output)["slow"]["vars"] == {"n": "slow"}

    await each(placements, check)


async def test_wait_all_success_in_declaration_order(client: Client, worker: str, tmp_path: Path, placements):
    """SUCCESS when every child succeeds; `max_workers: 0` is unlimited; the output map is ordered
    by declaration although the later-declared children end first; a disabled child has no task run."""

    async def check(where: Placement) -> None:
        run = await run_scenario(client, worker, tmp_path, where, "waitallok", """
            - id: p
              type: parallel
              max_workers: 0
              tasks:
                - id: first_declared
                  type: commands
                  commands:
                    - echo start $(date +%s.%N) >> @DIR@/spans.log
                    - sleep 0.6
                    - echo '::{"outputs":{"n":"first"}}::'
                    - echo end $(date +%s.%N) >> @DIR@/spans.log
                - id: second_declared
                  type: return
                  format: second
                - id: third_declared
                  type: commands
                  commands:
                    - echo start $(date +%s.%N) >> @DIR@/spans.log
                    - sleep 0.3
                    - echo end $(date +%s.%N) >> @DIR@/spans.log
                - id: off
                  type: commands
                  disabled: true
                  commands: ["touch @DIR@/off_ran"]
            - id: after
              type: return
              format: "{% for k in tasks.p.output %}{{ k }} {% endfor %}|{{ tasks.p.output | tojson }}"
            """)
        run.expect_run("SUCCESS")
        assert run.tr("p")["state"] == "SUCCESS"
        first, second = run.tr("first_declared"), run.tr("second_declared")
        assert epoch(second["ended_at"]) < epoch(first["ended_at"]), "the later-declared child should end first"
        assert duration(run.tr("p")) >= 0.6, "the group waits for all its children"
        assert peak_concurrency(run.dir / "spans.log") == 2, "max_workers 0 is unlimited"
        assert run.tr("third_declared")["state"] == "SUCCESS"
        keys, output = run.value("after").split("|", 1)
        # A disabled child has no task run; whether it is in the map (as null) is left open.
        assert keys.split()[:3] == ["first_declared", "second_declared", "third_declared"], f"not in declaration order: {keys}"
        assert "off" not in run.ids() and not (run.dir / "off_ran").exists()
        mapping = json.loads(output)
        assert mapping["first_declared"] == first["outputs"] and mapping["second_declared"] == {"value": "second"}
        assert mapping.get("off") is None

    await each(placements, check)


async def test_wait_all_warning_when_only_allowed_failures(client: Client, worker: str, tmp_path: Path, placements):
    """WARNING when the only failure is an allowed one; that child did not succeed, so its entry in
    the group output map is null (as for `race` and `min_success`, an allowed failure is no success)."""

    async def check(where: Placement) -> None:
        run = await run_scenario(client, worker, tmp_path, where, "waitallwarn", """
            - id: p
              type: parallel
              strategy: wait_all
              tasks:
                - id: tolerated
                  type: commands
                  allowFailure: true
                  commands: ["exit 4"]
                - id: ok
                  type: commands
                  commands:
                    - sleep 0.3
                    - echo '::{"outputs":{"n":"ok"}}::'
            - id: after
              type: return
              format: "{{ tasks.p.output | tojson }}"
            """)
        run.expect_run("WARNING")
        assert run.tr("p")["state"] == "WARNING", "only allowed failures: the group is WARNING"
        assert run.tr("tolerated")["state"] == "WARNING"
        assert run.tr("ok")["state"] == "SUCCESS"
        mapping = json.loads(run.value("after"))
        assert set(mapping) == {"tolerated", "ok"}
        assert mapping["ok"]["vars"] == {"n": "ok"}
        assert mapping["tolerated"] is None, "a failure turned WARNING by allowFailure did not succeed: its output is null"

    await each(placements, check)


# == 2. fail_fast ===============================================================================


async def test_fail_fast_kills_running_siblings_and_never_starts_queued_ones(
    client: Client, worker: str, tmp_path: Path, placements, watch: Watch
):
    async def check(where: Placement) -> None:
        folder = tmp_path / f"failfast-{where.name}"
        watch(folder / "sleeper.pid")
        run = await run_scenario(client, worker, tmp_path, where, "failfast", f"""
            - id: p
              type: parallel
              strategy: fail_fast
              max_workers: 2
              tasks:
                - id: tolerated
                  type: commands
                  allowFailure: true
                  commands: ["exit 1"]
                - id: broken
                  type: commands
                  commands:
                    - sleep 0.5
                    - date +%s.%N > @DIR@/fail_at
                    - exit 3
                - id: sleeper
                  type: commands
                  commands: ["{sleeper('sleeper')}"]
                - id: queued
                  type: commands
                  commands: ["touch @DIR@/queued_ran"]
            - id: after
              type: return
              format: never
            """, extra="""
            errors:
              - id: report
                type: return
                format: "{% for k in tasks.p.output %}{{ k }} {% endfor %}|{{ tasks.p.output | tojson }}"
            """)
        failed_at = run.epoch("fail_at")
        run.expect_run("FAILED")
        assert run.tr("p")["state"] == "FAILED"
        assert run.tr("broken")["state"] == "FAILED"
        assert run.tr("tolerated")["state"] == "WARNING"
        sleeper_run = run.tr("sleeper")
        assert sleeper_run["state"] == "CANCELLED", "an allowed failure does not stop a fail_fast group; a real one does"
        assert epoch(sleeper_run["started_at"]) < failed_at
        assert "queued" not in run.ids(), "a child queued behind max_workers must never start (no task run)"
        assert not (run.dir / "queued_ran").exists()
        assert "after" not in run.ids()
        assert run.result["error"]["task_id"] == "broken"
        died = await watch.died_at(folder / "sleeper.pid")
        assert died - failed_at < PROMPT, f"the sibling's process died {died - failed_at:.2f}s after the failure"
        ended = epoch(run.result["ended_at"])
        assert ended - failed_at < PROMPT, f"the run ended {ended - failed_at:.2f}s after the failure"
        assert duration(run.tr("p")) < 0.5 + PROMPT
        keys, output = run.value("report").split("|", 1)
        assert keys.split()[:3] == ["tolerated", "broken", "sleeper"]
        mapping = json.loads(output)
        assert mapping["sleeper"] is None and mapping["broken"] is None and mapping.get("queued") is None

    await each(placements, check)


async def test_kestra_parallel_defaults_to_fail_fast(client: Client, worker: str, tmp_path: Path, placements, watch: Watch):
    """`io.kestra.plugin.core.flow.Parallel` without `strategy` is fail_fast; `type: parallel` is wait_all."""

    async def check(where: Placement) -> None:
        folder = tmp_path / f"kestradefault-{where.name}"
        watch(folder / "k_sleeper.pid")
        run = await run_scenario(client, worker, tmp_path, where, "kestradefault", f"""
            - id: k
              type: io.kestra.plugin.core.flow.Parallel
              tasks:
                - id: k_sleeper
                  type: commands
                  commands: ["{sleeper('k_sleeper')}"]
                - id: k_broken
                  type: commands
                  commands: ["sleep 0.3", "exit 1"]
            """)
        run.expect_run("FAILED")
        assert run.tr("k_sleeper")["state"] == "CANCELLED"
        assert duration(run.tr("k")) < 0.3 + PROMPT
        await watch.died_at(folder / "k_sleeper.pid")

    await each(placements, check)


async def test_fail_fast_handler_never_overlaps_a_sibling_still_exiting(
    client: Client, worker: str, tmp_path: Path, placements, watch: Watch
):
    """SPEC §3.4: cancellation waits for the cancelled activities to acknowledge, so a handler
    never overlaps a sibling that is still running, however many siblings are cancelled at once.
    `stubborn` takes 1.5 s to exit after SIGTERM; `prompt` exits at once."""

    async def check(where: Placement) -> None:
        folder = tmp_path / f"failfastsettle-{where.name}"
        watch(folder / "stubborn.pid")
        watch(folder / "prompt.pid")
        run = await run_scenario(client, worker, tmp_path, where, "failfastsettle", f"""
            - id: p
              type: parallel
              strategy: fail_fast
              tasks:
                - {{id: prompt, type: commands, commands: ["{sleeper('prompt')}"]}}
                - {{id: stubborn, type: commands, commands: ["{stubborn('stubborn', 1.5)}"]}}
                - {{id: broken, type: commands, commands: ["sleep 0.5", "exit 3"]}}
              on_error:
                next: handler
            - id: between
              type: return
              format: never
            - id: handler
              type: commands
              commands: ["echo start $(date +%s.%N) >> @DIR@/handler.log"]
            """)
        run.expect_run("WARNING")
        assert run.tr("p")["state"] == "FAILED" and run.tr("broken")["state"] == "FAILED"
        assert run.tr("prompt")["state"] == "CANCELLED" and run.tr("stubborn")["state"] == "CANCELLED"
        assert "between" not in run.ids()
        await watch.died_at(folder / "stubborn.pid")
        stubborn_end = await logged(run, "stubborn", "end")
        handler_start = float((run.dir / "handler.log").read_text().split()[1])
        assert handler_start >= stubborn_end, (
            f"the handler started {stubborn_end - handler_start:.2f}s before the cancelled `stubborn` exited"
        )
        assert epoch(run.tr("p")["ended_at"]) >= stubborn_end - 0.01, "the group resolved before `stubborn` exited"

    await each(placements, check)


# == 3. best_effort =============================================================================

BEST_EFFORT = """
    - id: p
      type: parallel
      strategy: best_effort
      min_success: {min_success}
      tasks:
{children}
    - id: after
      type: return
      format: after
    """


def children(*specs: str) -> str:
    lines = {
        "ok": '        - {id: ok, type: commands, commands: ["sleep 0.2"]}',
        "ok2": '        - {id: ok2, type: return, format: ok2}',
        "slow_ok": '        - {id: slow_ok, type: commands, commands: ["sleep 0.8"]}',
        "broken": '        - {id: broken, type: commands, commands: ["exit 2"]}',
        "broken2": '        - {id: broken2, type: fail}',
        "off": '        - {id: "off", type: commands, disabled: true, commands: ["touch @DIR@/off_ran"]}',
        "tolerated": '        - {id: tolerated, type: commands, allowFailure: true, commands: ["exit 1"]}',
    }
    return "\n".join(lines[spec] for spec in specs)


async def test_best_effort_against_min_success(client: Client, worker: str, tmp_path: Path, placements):
    cases = [
        # (name, min_success, children, group state)
        ("below", 2, ("slow_ok", "broken", "broken2"), "FAILED"),
        ("at", 2, ("ok", "slow_ok", "broken"), "WARNING"),
        ("above", 1, ("ok", "slow_ok", "ok2", "broken"), "WARNING"),
        ("all", 3, ("ok", "slow_ok", "ok2"), "SUCCESS"),
        ("notcounted_with_failure", 2, ("ok", "off", "tolerated", "broken"), "FAILED"),
    ]

    async def check(where: Placement) -> None:
        async def case(name: str, min_success: int, specs: tuple[str, ...], state: str) -> None:
            tasks = BEST_EFFORT.format(min_success=min_success, children=children(*specs))
            run = await run_scenario(client, worker, tmp_path, where, f"besteffort-{name}", tasks)
            try:
                assert run.tr("p")["state"] == state, f"best_effort {name}: group {run.tr('p')['state']}, expected {state}"
                run.expect_run(state)
                for spec in specs:
                    if spec == "off":
                        assert "off" not in run.ids() and not (run.dir / "off_ran").exists()
                    else:
                        expected = {"broken": "FAILED", "broken2": "FAILED", "tolerated": "WARNING"}.get(spec, "SUCCESS")
                        assert run.tr(spec)["state"] == expected, f"{spec}: every child ends (siblings keep running)"
                assert ("after" in run.ids()) == (state != "FAILED")
            except AssertionError as error:
                raise AssertionError(f"case {name!r}: {error}") from error

        await all_of(case(*spec) for spec in cases)

    await each(placements, check)


async def test_best_effort_disabled_and_allowed_failures_do_not_count(client: Client, worker: str, tmp_path: Path, placements):
    """min_success 2 with one real success, one disabled child and one allowed failure: only one
    child succeeded, so the group is FAILED (not WARNING, not SUCCESS)."""

    async def check(where: Placement) -> None:
        tasks = BEST_EFFORT.format(min_success=2, children=children("ok", "off", "tolerated"))
        run = await run_scenario(client, worker, tmp_path, where, "besteffortnotcounted", tasks)
        assert run.tr("ok")["state"] == "SUCCESS"
        assert run.tr("tolerated")["state"] == "WARNING"
        assert "off" not in run.ids()
        assert run.tr("p")["state"] == "FAILED", "1 real success < min_success 2: neither `off` nor `tolerated` counts"
        run.expect_run("FAILED")

    await each(placements, check)


# == 4. race ====================================================================================


async def test_race_is_won_by_the_first_success_not_the_first_failure(
    client: Client, worker: str, tmp_path: Path, placements, watch: Watch
):
    async def check(where: Placement) -> None:
        folder = tmp_path / f"race-{where.name}"
        watch(folder / "loser.pid")
        run = await run_scenario(client, worker, tmp_path, where, "race", f"""
            - id: p
              type: parallel
              strategy: race
              tasks:
                - id: loser
                  type: commands
                  commands: ["{sleeper('loser')}"]
                - id: failing
                  type: commands
                  commands: ["sleep 0.2", "exit 1"]
                - id: winner
                  type: commands
                  commands:
                    - sleep 0.8
                    - echo '::{{"outputs":{{"who":"winner"}}}}::'
            - id: after
              type: return
              format: "{{{{ tasks.p.winner }}}}|{{{{ @OUTPUTS_P@.winner }}}}|{{{{ tasks.p.output.vars.who }}}}|{{{{ tasks.p.output | tojson }}}}"
            """)
        run.expect_run("SUCCESS")
        group, winner, failing = run.tr("p"), run.tr("winner"), run.tr("failing")
        assert group["state"] == "SUCCESS"
        assert winner["state"] == "SUCCESS"
        assert failing["state"] == "FAILED", "the failed child stays FAILED in a won race"
        assert run.tr("loser")["state"] == "CANCELLED"
        assert epoch(failing["ended_at"]) < epoch(winner["ended_at"]), "the failure came first and did not decide"
        assert group["outputs"] == {"winner": "winner"}
        assert 0.7 <= duration(group) < 0.8 + PROMPT, f"the race resolved after {duration(group):.2f}s"
        by_task, by_outputs, who, output = run.value("after").split("|", 3)
        assert (by_task, by_outputs, who) == ("winner", "winner", "winner")
        assert json.loads(output) == winner["outputs"], "a race's output is its winner's output"
        died = await watch.died_at(folder / "loser.pid")
        assert died - epoch(winner["ended_at"]) < PROMPT

    await each(placements, check)


async def test_race_without_any_success_fails(client: Client, worker: str, tmp_path: Path, placements):
    async def check(where: Placement) -> None:
        run = await run_scenario(client, worker, tmp_path, where, "racenowinner", """
            - id: p
              type: parallel
              strategy: race
              tasks:
                - {id: f1, type: commands, commands: ["exit 1"]}
                - {id: f2, type: commands, commands: ["sleep 0.4", "exit 2"]}
                - {id: tolerated, type: commands, allowFailure: true, commands: ["sleep 0.1", "exit 3"]}
                - {id: skipped, type: return, runIf: "{{ false }}", format: x}
                - {id: "off", type: return, disabled: true, format: x}
            - id: after
              type: return
              format: never
            """)
        run.expect_run("FAILED")
        group = run.tr("p")
        assert group["state"] == "FAILED"
        assert not (group["outputs"] or {}).get("winner"), "no child succeeded: no winner"
        assert run.tr("f1")["state"] == "FAILED"
        assert run.tr("f2")["state"] == "FAILED", "a failure does not decide a race: f2 ran to its end"
        assert run.tr("tolerated")["state"] == "WARNING"
        assert "after" not in run.ids()

    await each(placements, check)


# == 5. group timeout ===========================================================================


async def test_group_timeout_fails_every_strategy_with_timeout(
    client: Client, worker: str, tmp_path: Path, placements, watch: Watch
):
    strategies = ("wait_all", "fail_fast", "best_effort", "race")

    async def check(where: Placement) -> None:
        async def one(strategy: str) -> None:
            name = f"timeout-{strategy.replace('_', '')}"
            folder = tmp_path / f"{name}-{where.name}"
            watch(folder / "s1.pid")
            watch(folder / "s2.pid")
            run = await run_scenario(client, worker, tmp_path, where, name, f"""
                - id: p
                  type: parallel
                  strategy: {strategy}
                  max_workers: 3
                  timeout: PT1S
                  tasks:
                    - {{id: s1, type: commands, commands: ["{sleeper('s1')}"]}}
                    - {{id: s2, type: commands, commands: ["{stubborn('s2', 0.2)}"]}}
                    - {{id: nap, type: sleep, duration: PT30S}}
                    - {{id: queued, type: commands, commands: ["touch @DIR@/queued_ran"]}}
                - id: after
                  type: return
                  format: never
                """)
            try:
                group = run.tr("p")
                assert group["state"] == "FAILED", "a group timeout is never a success"
                assert group["error"]["type"] == "Timeout"
                assert group["error"]["task_id"] == "p", "the timeout's error names the group"
                ends = {key: run.tr(key)["ended_at"] for key in ("s1", "s2", "nap")}
                # The clock of the cancellation starts when the PT1S timer fires, 1 s after the group's start.
                assert 1 <= duration(group) < 1 + TIMER_TICK + PROMPT, f"a PT1S timeout resolved after {duration(group):.2f}s ({ends})"
                run.expect_run("FAILED")
                assert run.result["error"]["type"] == "Timeout" and run.result["error"]["task_id"] == "p"
                assert run.tr("s1")["state"] == "CANCELLED" and run.tr("s2")["state"] == "CANCELLED"
                assert run.tr("nap")["state"] == "CANCELLED", "a durable-timer child is cancelled too"
                assert "queued" not in run.ids() and not (run.dir / "queued_ran").exists()
                assert "after" not in run.ids()
                for pid in ("s1", "s2"):
                    died = await watch.died_at(folder / f"{pid}.pid")
                    assert died - (epoch(group["started_at"]) + 1) < TIMER_TICK + PROMPT
                s2_end = await logged(run, "s2", "end")
                assert epoch(group["ended_at"]) >= s2_end - 0.01, (
                    f"the group resolved {s2_end - epoch(group['ended_at']):.2f}s before its cancelled child `s2` "
                    "exited: cancellation must wait for the activity's acknowledgement"
                )
            except AssertionError as error:
                raise AssertionError(f"strategy {strategy}: {error}") from error

        await all_of(one(strategy) for strategy in strategies)

    await each(placements, check)


# == 6. on_success / on_error ===================================================================

HANDLER_TARGETS = """
    - id: between
      type: return
      format: never
    - id: handler
      type: return
      format: "{{ input | tojson }}"
    - id: done
      type: return
      format: "{{ input | tojson }}"
    - id: after_done
      type: return
      format: after
    """


async def test_on_success_jumps_with_rendered_values(client: Client, worker: str, tmp_path: Path, placements):
    async def check(where: Placement) -> None:
        run = await run_scenario(client, worker, tmp_path, where, "onsuccess", """
            - id: p
              type: parallel
              tasks:
                - id: slow
                  type: commands
                  commands:
                    - sleep 0.4
                    - echo '::{"outputs":{"n":"slow"}}::'
                - id: quick
                  type: return
                  format: quick
              on_success:
                next: done
                with:
                  keys: "{% for k in output %}{{ k }} {% endfor %}"
                  output: "{{ .output | tojson }}"
                  results: "{{ .results | tojson }}"
                  summary: "{{ summary | tojson }}"
                  took: "{{ .execution.duration }}"
                  raw: "{{ .output }}"
              on_error:
                next: handler
                with:
                  error: "{{ .error }}"
            @@
            """ + HANDLER_TARGETS)
        run.expect_run("SUCCESS")
        assert run.tr("p")["state"] == "SUCCESS"
        assert "between" not in run.ids(), "tasks between the group and `next` do not run"
        assert "handler" not in run.ids(), "a task that is only an on_error target does not run on success"
        assert run.tr("after_done")["state"] == "SUCCESS", "the tasks after the jumped-to one run"
        given = run.input_of("done")
        slow = run.tr("slow")
        assert given["keys"].split() == ["slow", "quick"]
        assert json.loads(given["output"]) == {"slow": slow["outputs"], "quick": {"value": "quick"}}
        results = json.loads(given["results"])
        assert set(results) == {"slow", "quick"}
        assert results["slow"]["state"] == "SUCCESS" and results["slow"]["output"] == slow["outputs"]
        assert results["slow"]["error"] is None
        assert results["quick"] == {"state": "SUCCESS", "output": {"value": "quick"}, "error": None}
        assert json.loads(given["summary"]) == {"SUCCESS": 2}
        took = float(given["took"])
        assert 0.4 <= took <= run.result["duration_s"] + 0.5, f"execution.duration rendered {took}"
        assert "slow" in given["raw"] and "quick" in given["raw"], "Go-style `{{ .output }}` renders the map"
        assert epoch(run.tr("done")["started_at"]) >= epoch(run.tr("p")["ended_at"])

    await each(placements, check)


async def test_on_error_jumps_to_its_handler_and_the_run_is_warning(client: Client, worker: str, tmp_path: Path, placements):
    async def check(where: Placement) -> None:
        run = await run_scenario(client, worker, tmp_path, where, "onerror", """
            - id: p
              type: parallel
              strategy: wait_all
              tasks:
                - id: ok
                  type: commands
                  commands:
                    - sleep 0.4
                    - echo '::{"outputs":{"n":"ok"}}::'
                - id: broken
                  type: commands
                  commands: ["echo boom-broken >&2", "exit 3"]
              on_success:
                next: done
                with:
                  output: "{{ .output }}"
              on_error:
                next: handler
                with:
                  failed: "{{ .failed_tasks | tojson }}"
                  failed_raw: "{{ .failed_tasks }}"
                  error: "{{ .error | tojson }}"
                  error_raw: "{{ .error }}"
                  output: "{{ .output | tojson }}"
                  results: "{{ .results | tojson }}"
                  summary: "{{ .summary | tojson }}"
                  winner: "{{ winner }}"
                  took: "{{ .execution.duration }}"
            @@
            """ + HANDLER_TARGETS)
        run.expect_run("WARNING")
        assert run.tr("p")["state"] == "FAILED", "a handled group stays FAILED in the ledger"
        assert run.tr("broken")["state"] == "FAILED", "the failed child stays FAILED in the ledger"
        assert run.tr("ok")["state"] == "SUCCESS"
        assert "between" not in run.ids(), "tasks between the group and `next` do not run"
        assert run.tr("handler")["state"] == "SUCCESS"
        assert run.tr("done")["state"] == "SUCCESS" and run.tr("after_done")["state"] == "SUCCESS", (
            "the tasks after the jumped-to one run"
        )
        given = run.input_of("handler")
        failed = json.loads(given["failed"])
        assert [entry["id"] for entry in failed] == ["broken"]
        assert failed[0]["error"]["type"] == "CommandFailed" and "boom-broken" in failed[0]["error"]["message"]
        assert "broken" in given["failed_raw"] and "boom-broken" in given["failed_raw"]
        error = json.loads(given["error"])
        assert error["type"] == "CommandFailed" and error["task_id"] == "broken" and "boom-broken" in error["message"]
        assert "boom-broken" in given["error_raw"]
        assert json.loads(given["output"]) == {"ok": run.tr("ok")["outputs"], "broken": None}
        results = json.loads(given["results"])
        assert results["ok"]["state"] == "SUCCESS" and results["ok"]["output"] == run.tr("ok")["outputs"]
        assert results["broken"]["state"] == "FAILED" and results["broken"]["error"]["type"] == "CommandFailed"
        assert json.loads(given["summary"]) == {"SUCCESS": 1, "FAILED": 1}
        assert given["winner"] in ("None", ""), "no winner outside a race"
        assert 0.4 <= float(given["took"]) <= run.result["duration_s"] + 0.5
        assert epoch(run.tr("handler")["started_at"]) >= epoch(run.tr("ok")["ended_at"])

    await each(placements, check)


async def test_race_on_success_sees_the_winner(client: Client, worker: str, tmp_path: Path, placements, watch: Watch):
    async def check(where: Placement) -> None:
        folder = tmp_path / f"racehandler-{where.name}"
        watch(folder / "slowpoke.pid")
        run = await run_scenario(client, worker, tmp_path, where, "racehandler", f"""
            - id: p
              type: parallel
              strategy: race
              tasks:
                - id: slowpoke
                  type: commands
                  commands: ["{sleeper('slowpoke')}"]
                - id: fast
                  type: commands
                  commands:
                    - sleep 0.3
                    - echo '::{{"outputs":{{"who":"fast"}}}}::'
              on_success:
                next: done
                with:
                  winner: "{{{{ .winner }}}}"
                  output: "{{{{ .output | tojson }}}}"
                  summary: "{{{{ summary | tojson }}}}"
                  results: "{{{{ results | tojson }}}}"
              on_error:
                next: handler
            @@
            """ + HANDLER_TARGETS)
        run.expect_run("SUCCESS")
        assert "between" not in run.ids() and "handler" not in run.ids()
        given = run.input_of("done")
        assert given["winner"] == "fast"
        assert json.loads(given["output"]) == run.tr("fast")["outputs"] == {"exitCode": 0, "vars": {"who": "fast"}}
        summary = json.loads(given["summary"])
        assert summary.get("SUCCESS") == 1 and summary.get("CANCELLED") == 1
        assert json.loads(given["results"])["slowpoke"]["state"] == "CANCELLED"
        assert epoch(run.tr("done")["started_at"]) >= epoch(run.tr("slowpoke")["ended_at"]), (
            "the handler runs once the cancellations have settled"
        )
        await watch.died_at(folder / "slowpoke.pid")

    await each(placements, check)


async def test_fail_fast_on_error_with_a_fail_task(client: Client, worker: str, tmp_path: Path, placements, watch: Watch):
    async def check(where: Placement) -> None:
        folder = tmp_path / f"failfasthandler-{where.name}"
        watch(folder / "sleeper.pid")
        run = await run_scenario(client, worker, tmp_path, where, "failfasthandler", f"""
            - id: p
              type: parallel
              strategy: fail_fast
              tasks:
                - id: sleeper
                  type: commands
                  commands: ["{sleeper('sleeper')}"]
                - id: d
                  type: sequential
                  tasks:
                    - {{id: pause, type: sleep, duration: PT0.5S}}
                    - {{id: boom, type: fail}}
              on_error:
                next: handler
                with:
                  failed: "{{{{ .failed_tasks | tojson }}}}"
                  error: "{{{{ .error | tojson }}}}"
                  results: "{{{{ .results | tojson }}}}"
            @@
            """ + HANDLER_TARGETS)
        run.expect_run("WARNING")
        assert run.tr("p")["state"] == "FAILED"
        assert run.tr("d")["state"] == "FAILED" and run.tr("boom")["state"] == "FAILED"
        assert run.tr("sleeper")["state"] == "CANCELLED"
        assert "between" not in run.ids()
        given = run.input_of("handler")
        failed = json.loads(given["failed"])
        assert [entry["id"] for entry in failed if entry["id"] != "sleeper"] == ["d"], "the failed child (the cancelled one may be listed too)"
        error = json.loads(given["error"])
        assert error["type"] == "Fail" and error["message"] == "Task failure"
        assert error["task_id"] == "boom", "the error names the task that failed, deepest in the tree"
        results = json.loads(given["results"])
        assert results["sleeper"]["state"] == "CANCELLED" and results["d"]["state"] == "FAILED"
        assert epoch(run.tr("handler")["started_at"]) >= epoch(run.tr("sleeper")["ended_at"])
        died = await watch.died_at(folder / "sleeper.pid")
        assert died - epoch(run.tr("boom")["ended_at"]) < PROMPT

    await each(placements, check)


async def test_timeout_on_error_handler(client: Client, worker: str, tmp_path: Path, placements, watch: Watch):
    async def check(where: Placement) -> None:
        folder = tmp_path / f"timeouthandler-{where.name}"
        watch(folder / "s1.pid")
        run = await run_scenario(client, worker, tmp_path, where, "timeouthandler", f"""
            - id: p
              type: parallel
              timeout: PT1S
              tasks:
                - {{id: s1, type: commands, commands: ["{sleeper('s1')}"]}}
                - {{id: quick, type: return, format: quick}}
              on_success:
                next: done
              on_error:
                next: handler
                with:
                  error: "{{{{ .error | tojson }}}}"
                  output: "{{{{ .output | tojson }}}}"
                  results: "{{{{ results | tojson }}}}"
            @@
            """ + HANDLER_TARGETS)
        run.expect_run("WARNING")
        group = run.tr("p")
        assert group["state"] == "FAILED" and group["error"]["type"] == "Timeout"
        assert 1 <= duration(group) < 1 + TIMER_TICK + PROMPT  # the PT1S timer, then the cancellation's promptness
        assert "between" not in run.ids()
        given = run.input_of("handler")
        error = json.loads(given["error"])
        assert error["type"] == "Timeout" and error["task_id"] == "p"
        assert json.loads(given["output"]) == {"s1": None, "quick": {"value": "quick"}}
        assert json.loads(given["results"])["s1"]["state"] == "CANCELLED"
        assert epoch(run.tr("handler")["started_at"]) >= epoch(run.tr("s1")["ended_at"])
        await watch.died_at(folder / "s1.pid")

    await each(placements, check)


# == 7. seed 002's `parallel-task-example` under each strategy ===================================
# The seed's example, indentation restored, its `basic` children completed with shell commands:
# task-1 fails at 0.5 s, task-2 is a slow success (4 s), task-3 a quick success (0.1 s).

SEED_002 = """
    - id: parallel-task-example
      type: parallel
      # Strategy (Required): Determines how task execution and failures are handled
      strategy: {strategy} # wait_all | fail_fast | best_effort | race
      # Worker Pool (Optional): Control concurrent execution
      max_workers: 4 # Maximum concurrent tasks (0 = unlimited)
      timeout: 5m # Overall timeout for all tasks
      # Task Definitions (Required): Array of tasks to execute in parallel
      tasks:
        - id: task-1
          type: basic
          commands:
            - sleep 0.5
            - echo 'task-1 failed' >&2
            - exit 3
        - id: task-2
          type: basic
          commands:
            - sleep 4 & echo $! > @DIR@/task-2.pid; wait $!
            - echo '::{{"outputs":{{"marker":"slow-t2"}}}}::'
        - id: task-3
          type: basic
          commands:
            - sleep 0.1
            - echo '::{{"outputs":{{"marker":"quick-t3"}}}}::'
      # Success Handler (Optional): Execute when parallel task completes
      on_success:
        next: downstream-task
        with:
          results: "{{{{ .output }}}}"
          execution_time: "{{{{ .execution.duration }}}}"
      # Error Handler (Optional): Handle failures based on strategy
      on_error:
        next: error-handler
        with:
          failed_tasks: "{{{{ .failed_tasks }}}}"
          error: "{{{{ .error }}}}"
    - id: downstream-task
      type: return
      format: "{{{{ input | tojson }}}}"
    - id: error-handler
      type: return
      format: "{{{{ input | tojson }}}}"
    """

SEED_OUTCOMES = {
    # strategy: (group, run, handler that runs, task-1, task-2, task-3)
    "wait_all": ("FAILED", "WARNING", "error-handler", ("FAILED",), ("SUCCESS",), ("SUCCESS",)),
    "fail_fast": ("FAILED", "WARNING", "error-handler", ("FAILED",), ("CANCELLED",), ("SUCCESS",)),
    "best_effort": ("WARNING", "WARNING", "downstream-task", ("FAILED",), ("SUCCESS",), ("SUCCESS",)),
    # task-1 may end (FAILED) before the cancellation reaches it: either is right.
    "race": ("SUCCESS", "SUCCESS", "downstream-task", ("FAILED", "CANCELLED"), ("CANCELLED",), ("SUCCESS",)),
}


@pytest.mark.parametrize("strategy", list(SEED_OUTCOMES))
async def test_seed_002_parallel_task_example(client: Client, worker: str, tmp_path: Path, placements, strategy: str, watch: Watch):
    group_state, run_state, handler, *child_states = SEED_OUTCOMES[strategy]
    other = {"error-handler": "downstream-task", "downstream-task": "error-handler"}[handler]

    async def check(where: Placement) -> None:
        folder = tmp_path / f"seed002-{where.name}"
        watch(folder / "task-2.pid")
        run = await run_scenario(client, worker, tmp_path, where, "seed002", SEED_002.format(strategy=strategy))
        run.expect_run(run_state)
        group = run.tr("parallel-task-example")
        assert group["state"] == group_state
        for child, states in zip(("task-1", "task-2", "task-3"), child_states):
            assert run.tr(child)["state"] in states, f"{strategy}: {child} is {run.tr(child)['state']}"
        assert other not in run.ids(), f"{strategy}: `{other}` must not run"
        given = run.input_of(handler)
        if handler == "error-handler":
            assert "task-1" in given["failed_tasks"] and "task-2" not in given["failed_tasks"]
            assert "task-1" in given["error"] and "task-1 failed" in given["error"]
        else:
            assert float(given["execution_time"]) >= 0.1
            assert "quick-t3" in given["results"]
            if strategy == "race":
                assert "slow-t2" not in given["results"], "a race's output is the winner's alone"
                assert group["outputs"] == {"winner": "task-3"}
            else:
                assert "slow-t2" in given["results"]
        if strategy in ("fail_fast", "race"):
            assert duration(group) < PROMPT, f"{strategy}: the group took {duration(group):.2f}s"
            await watch.died_at(folder / "task-2.pid")
        else:
            assert duration(group) >= 4, f"{strategy}: the group must wait for every child"

    await each(placements, check)


async def test_seed_002_basic_child_decided_by_return(client: Client, worker: str, tmp_path: Path):
    """SPEC §3.2: `basic` is decided by its fields, `return` among them; a `basic` child with
    `return` is a `return` task whose output `value` is the rendered text."""
    run = await run_scenario(client, worker, tmp_path, TOP, "basicreturn", """
        - id: p
          type: parallel
          tasks:
            - id: task-1
              type: basic
              return: "made by {{ task.id }}"
            - id: task-2
              type: basic
              commands: ["true"]
        """)
    run.expect_run("SUCCESS")
    assert run.tr("task-1")["outputs"] == {"value": "made by task-1"}
