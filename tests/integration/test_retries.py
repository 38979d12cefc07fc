"""Retries on a real server (SPEC §3.3, §6, §7): attempts run by the interpreter and counted on
one task run, the wait between attempts a durable timer (constant, exponential, random), maxDuration,
warningOnRetry, inheritance from the nearest flowable then the flow, templates rendered again per
attempt (`taskrun.attemptsCount`), and a lost worker that is re-dispatched without costing an attempt."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from temporal_flows.language.loader import load_flow, load_flow_text
from temporal_flows.metadata import HEARTBEAT_TIMEOUT
from temporal_flows.model.problems import FlowError
from client.runs import start_run, wait_result
from client.worker import workflow_runner
from temporal_flows.engine.workflow import FlowWorkflow
from tests.support import (
    REPO,
    cli_env,
    duration,
    fill,
    run_flows,
    run_with_history,
    runs_of,
    task_ids,
    task_run,
    tflow,
    wait_until,
    write_flow,
)


def attempt_lines(log: Path, task_id: str | None = None) -> list[list[str]]:
    """Lines `<task id> <value> <attemptsCount> <epoch>` the failing commands wrote, split."""
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return [line for line in lines if task_id is None or line[0] == task_id]


def failing(log: Path, exit_code: int = 1) -> str:
    """A `commands` list that records the attempt in `log`, then fails."""
    return (
        f'["echo {{{{ task.id }}}} v{{{{ taskrun.value }}}} {{{{ taskrun.attemptsCount }}}} $(date +%s.%N) >> {log}", '
        f'"exit {exit_code}"]'
    )


def timer_seconds(events: list[Any]) -> list[float]:
    return [
        round(event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds(), 3)
        for event in events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def replays(events: list[Any]) -> bool:
    """The history replays with the current interpreter (delays drawn from the workflow's random)."""
    replayer = Replayer(workflows=[FlowWorkflow], workflow_runner=workflow_runner())
    outcome = await replayer.replay_workflow(WorkflowHistory("replay", events), raise_on_replay_failure=False)
    return outcome.replay_failure is None


def gaps(lines: list[list[str]]) -> list[float]:
    starts = [float(line[3]) for line in lines]
    return [later - earlier for earlier, later in zip(starts, starts[1:])]


async def test_constant_retry_attempts_on_one_task_run(client: Client, worker: str, tmp_path: Path):
    log = tmp_path / "constant.log"
    flow = write_flow(tmp_path, fill("""
        id: constant
        namespace: tests.retries
        tasks:
          - id: flaky
            type: commands
            retry:
              type: constant
              maxAttempt: 3
              interval: PT1S
            commands: <<cmd>>
          - {id: never, type: return, format: never}
        errors:
          - {id: on_error, type: return, format: "{{ task.id }}"}
        """, cmd=failing(log)), "constant.yaml")
    result, events = await run_with_history(client, flow, worker)
    assert result["state"] == "FAILED"
    assert task_ids(result) == ["flaky", "on_error"], "retries add attempts, not task runs; errors run once"
    flaky = task_run(result, "flaky")
    assert flaky["state"] == "FAILED"
    assert flaky["attempts"] == 3
    assert flaky["error"]["type"] == "CommandFailed"
    lines = attempt_lines(log, "flaky")
    assert [line[2] for line in lines] == ["0", "1", "2"], "templates render again on every attempt (attemptsCount)"
    assert timer_seconds(events) == [1.0, 1.0], "the wait between attempts is a durable timer"
    assert all(1.0 <= gap < 1.8 for gap in gaps(lines)), gaps(lines)
    assert 2.0 <= duration(flaky) < 3.5, duration(flaky)


async def test_exponential_and_random_delays(client: Client, worker: str, tmp_path: Path):
    exp_log, capped_log, random_log = tmp_path / "exp.log", tmp_path / "capped.log", tmp_path / "random.log"
    flows = {
        "exponential": fill("""
            id: exponential
            namespace: tests.retries
            tasks:
              - id: flaky
                type: commands
                retry: {type: exponential, interval: PT1S, delayFactor: 1.5, maxInterval: PT10S, maxAttempt: 4}
                commands: <<cmd>>
            """, cmd=failing(exp_log)),
        "capped": fill("""
            id: capped
            namespace: tests.retries
            tasks:
              - id: flaky
                type: commands
                retry: {type: exponential, interval: 200ms, delay_factor: 3, max_interval: 500ms, max_attempt: 4}
                commands: <<cmd>>
            """, cmd=failing(capped_log)),
        "random": fill("""
            id: random
            namespace: tests.retries
            tasks:
              - id: flaky
                type: commands
                retry: {type: random, minInterval: PT0.2S, maxInterval: PT0.6S, maxAttempt: 5}
                commands: <<cmd>>
            """, cmd=failing(random_log)),
    }
    paths = {name: write_flow(tmp_path, text, f"{name}.yaml") for name, text in flows.items()}
    outcomes = await asyncio.gather(*(run_with_history(client, path, worker) for path in paths.values()))
    (exp, exp_events), (capped, capped_events), (rand, rand_events) = outcomes

    assert task_run(exp, "flaky")["attempts"] == 4
    assert timer_seconds(exp_events) == [1.0, 1.5, 2.25]
    exp_gaps = gaps(attempt_lines(exp_log))
    assert len(exp_gaps) == 3 and all(delay <= gap < delay + 0.8 for gap, delay in zip(exp_gaps, (1.0, 1.5, 2.25))), exp_gaps
    assert exp_gaps[0] < exp_gaps[1] < exp_gaps[2], f"exponential delays must grow: {exp_gaps}"
    assert 4.75 <= duration(task_run(exp, "flaky")) < 6.5

    assert task_run(capped, "flaky")["attempts"] == 4
    assert timer_seconds(capped_events) == [0.2, 0.5, 0.5], "maxInterval caps the exponential delay"

    assert task_run(rand, "flaky")["attempts"] == 5
    delays = timer_seconds(rand_events)
    assert len(delays) == 4
    assert all(0.2 <= delay <= 0.6 for delay in delays), delays
    assert len(set(delays)) > 1, f"random delays should differ: {delays}"
    assert await replays(rand_events), "random delays must replay deterministically"
    assert await replays(exp_events)


async def test_max_duration_stops_retrying_early(client: Client, worker: str, tmp_path: Path):
    log = tmp_path / "maxduration.log"
    [result] = (await run_flows(client, worker, tmp_path, {"maxduration": fill("""
        id: maxduration
        namespace: tests.retries
        tasks:
          - id: flaky
            type: commands
            retry: {type: constant, interval: PT1S, maxDuration: PT2.5S, maxAttempt: 50}
            commands: <<cmd>>
        """, cmd=failing(log))})).values()
    flaky = task_run(result, "flaky")
    assert flaky["state"] == "FAILED"
    assert 2 <= flaky["attempts"] <= 4, flaky["attempts"]
    lines = attempt_lines(log, "flaky")
    assert len(lines) == flaky["attempts"]
    assert float(lines[-1][3]) - float(lines[0][3]) <= 2.5 + 0.3, "no attempt may start after maxDuration"
    assert duration(flaky) < 3.5


async def test_max_duration_alone_bounds_the_attempts(client: Client, worker: str, tmp_path: Path):
    [result] = (await run_flows(client, worker, tmp_path, {"onlyduration": """
        id: onlyduration
        namespace: tests.retries
        tasks:
          - id: flaky
            type: fail
            allowFailure: true
            retry: {type: constant, interval: PT1S, maxDuration: PT2.5S}
        """})).values()
    flaky = task_run(result, "flaky")
    assert flaky["state"] == "WARNING", "allowFailure applies after the retries"
    assert 2 <= flaky["attempts"] <= 4, flaky["attempts"]
    assert duration(flaky) < 3.5
    assert result["state"] == "WARNING"


async def test_warning_on_retry_and_success_after_retries(client: Client, worker: str, tmp_path: Path):
    flow = """
        id: <<id>>
        namespace: tests.retries
        tasks:
          - id: third_time
            type: commands
            retry: {type: constant, interval: PT0.1S, maxAttempt: 5<<extra>>}
            commands: ["test {{ taskrun.attemptsCount }} -ge 2"]
          - id: first_time
            type: commands
            retry: {type: constant, interval: PT0.1S, maxAttempt: 5<<extra>>}
            commands: ["true"]
        """
    results = await run_flows(client, worker, tmp_path, {
        "warn": fill(flow, id="warn", extra=", warningOnRetry: true"),
        "plain": fill(flow, id="plain", extra=""),
    })
    warn, plain = results["warn"], results["plain"]
    assert task_run(warn, "third_time")["attempts"] == 3
    assert task_run(warn, "third_time")["state"] == "WARNING", "a success after a retry is WARNING with warningOnRetry"
    assert task_run(warn, "first_time")["attempts"] == 1
    assert task_run(warn, "first_time")["state"] == "SUCCESS", "no retry happened, so no warning"
    assert warn["state"] == "WARNING"
    assert task_run(plain, "third_time")["attempts"] == 3
    assert task_run(plain, "third_time")["state"] == "SUCCESS"
    assert plain["state"] == "SUCCESS"


async def test_retry_is_inherited_from_the_nearest_flowable_then_the_flow(client: Client, worker: str, tmp_path: Path):
    log, bare_log = tmp_path / "inherit.log", tmp_path / "bare.log"
    results = await run_flows(client, worker, tmp_path, {
        "inherit": fill("""
            id: inherit
            namespace: tests.retries
            retry: {type: constant, maxAttempt: 2, interval: PT0.1S}
            tasks:
              - id: top
                type: parallel
                tasks:
                  - {id: from_flow, type: commands, allowFailure: true, commands: <<cmd>>}
                  - {id: pure_from_flow, type: fail, allowFailure: true}
                  - id: grp
                    type: parallel
                    retry: {type: constant, maxAttempt: 3, interval: PT0.1S}
                    tasks:
                      - {id: from_group, type: commands, allowFailure: true, commands: <<cmd>>}
                      - id: own
                        type: commands
                        allowFailure: true
                        retry: {type: constant, maxAttempt: 4, interval: PT0.1S}
                        commands: <<cmd>>
                      - id: inner
                        type: sequential
                        tasks:
                          - {id: from_outer_group, type: commands, allowFailure: true, commands: <<cmd>>}
                      - id: loop
                        type: foreach
                        values: [a, b]
                        retry: {type: constant, maxAttempt: 1, interval: PT0.1S}
                        tasks:
                          - {id: from_loop, type: commands, allowFailure: true, commands: <<cmd>>}
                      - {id: succeeds, type: commands, commands: ["true"]}
            """, cmd=failing(log)),
        "bare": fill("""
            id: bare
            namespace: tests.retries
            tasks:
              - id: grp
                type: sequential
                tasks:
                  - {id: once, type: commands, allowFailure: true, commands: <<cmd>>}
                  - {id: pure_once, type: fail, allowFailure: true}
              - {id: last, type: commands, commands: <<cmd>>}
            """, cmd=failing(bare_log)),
    })
    inherit = results["inherit"]
    assert inherit["state"] == "WARNING", inherit["error"]
    expected = {
        "from_flow": 2, "pure_from_flow": 2, "from_group": 3, "own": 4, "from_outer_group": 3,
        "succeeds": 1,
    }
    assert {task_id: task_run(inherit, task_id)["attempts"] for task_id in expected} == expected
    assert [run["attempts"] for run in runs_of(inherit, "from_loop")] == [1, 1], "the nearest retry wins, even maxAttempt 1"
    for task_id in ("from_flow", "from_group", "own", "from_outer_group"):
        assert len(attempt_lines(log, task_id)) == expected[task_id], f"{task_id}: attempts must count real runs"
        assert task_run(inherit, task_id)["state"] == "WARNING"
    assert len(attempt_lines(log, "from_loop")) == 2
    for flowable in ("top", "grp", "inner", "loop"):
        assert task_run(inherit, flowable)["attempts"] == 1, "a flowable is not retried itself"
    assert len(inherit["task_runs"]) == 12

    bare = results["bare"]
    assert bare["state"] == "FAILED"
    assert {run["task_id"]: run["attempts"] for run in bare["task_runs"]} == {"grp": 1, "once": 1, "pure_once": 1, "last": 1}
    assert len(attempt_lines(bare_log)) == 2, "a task without retry runs exactly once"


async def test_pure_tasks_retry_and_render_again_and_items_count_their_own_attempts(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "pure": """
            id: pure
            namespace: tests.retries
            tasks:
              - {id: first, type: return, format: "attempt {{ taskrun.attemptsCount }}"}
              - id: f
                type: io.kestra.plugin.core.execution.Fail
                retry: {type: constant, interval: PT0.1S, maxAttempt: 3}
                errorMessage: "failed at attemptsCount {{ taskrun.attemptsCount }}"
            """,
        "items": """
            id: items
            namespace: tests.retries
            tasks:
              - id: each
                type: foreach
                values: [a, b, c]
                concurrencyLimit: 0
                retry: {type: constant, interval: PT0.1S, maxAttempt: 4}
                tasks:
                  - id: t
                    type: commands
                    commands: ["test {{ taskrun.value }} = a || test {{ taskrun.value }}{{ taskrun.attemptsCount }} = b1 || test {{ taskrun.attemptsCount }} = 2"]
            """,
    })
    pure = results["pure"]
    assert task_run(pure, "first")["outputs"]["value"] == "attempt 0"
    f = task_run(pure, "f")
    assert f["state"] == "FAILED" and f["attempts"] == 3
    assert f["error"]["message"] == "failed at attemptsCount 2", "a pure task's templates render again per attempt"
    items = results["items"]
    assert items["state"] == "SUCCESS", items["error"]
    assert {run["value"]: run["attempts"] for run in runs_of(items, "t")} == {"a": 1, "b": 2, "c": 3}
    assert len(runs_of(items, "t")) == 3


async def test_a_child_fails_only_after_its_retries(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "failfast": """
            id: retryfailfast
            namespace: tests.retries
            tasks:
              - id: group
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - id: flaky
                    type: commands
                    retry: {type: constant, interval: PT0.1S, maxAttempt: 3}
                    commands: ["test {{ taskrun.attemptsCount }} -ge 1"]
                  - {id: slow, type: commands, commands: ["sleep 2.5"]}
            """,
        "sequence": """
            id: retrysequence
            namespace: tests.retries
            tasks:
              - id: flaky
                type: commands
                retry: {type: constant, interval: PT0.1S, maxAttempt: 3}
                commands: ["test {{ taskrun.attemptsCount }} -ge 2"]
              - {id: next, type: return, format: "{{ outputs.flaky.exitCode }}"}
            """,
    })
    failfast = results["failfast"]
    assert failfast["state"] == "SUCCESS", failfast["error"]
    assert task_run(failfast, "flaky")["attempts"] == 2
    assert task_run(failfast, "slow")["state"] == "SUCCESS", "a failed attempt that is retried is no failure of the group"
    sequence = results["sequence"]
    assert sequence["state"] == "SUCCESS", sequence["error"]
    assert task_run(sequence, "next")["outputs"]["value"] == "0"


async def test_the_wait_between_attempts_is_cancelled_promptly(client: Client, worker: str, tmp_path: Path):
    path = write_flow(tmp_path, """
        id: cancelwait
        namespace: tests.retries
        tasks:
          - id: group
            type: parallel
            strategy: race
            tasks:
              - id: flaky
                type: commands
                retry: {type: constant, interval: PT60S, maxAttempt: 3}
                commands: ["exit 1"]
              - {id: winner, type: sleep, duration: PT1S}
        """, "cancelwait.yaml")
    started = time.monotonic()
    result, events = await run_with_history(client, path, worker)
    assert time.monotonic() - started < 10
    assert result["state"] == "SUCCESS", result["error"]
    flaky = task_run(result, "flaky")
    assert flaky["state"] == "CANCELLED"
    assert flaky["attempts"] == 1
    assert 60.0 in timer_seconds(events)
    assert any(event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED for event in events)


async def test_retry_with_timeout_per_attempt(client: Client, worker: str, tmp_path: Path):
    [result] = (await run_flows(client, worker, tmp_path, {"timeouts": """
        id: timeouts
        namespace: tests.retries
        tasks:
          - id: slow
            type: commands
            timeout: 500ms
            retry: {type: constant, interval: PT0.1S, maxAttempt: 2}
            commands: ["sleep 20"]
        """})).values()
    slow = task_run(result, "slow")
    assert slow["state"] == "FAILED"
    assert slow["error"]["type"] == "Timeout"
    assert slow["attempts"] == 2, "a timeout is the attempt's failure; the retry runs it again"
    assert 1.0 <= duration(slow) < 8


def test_bad_retry_is_a_validation_error():
    base = """
id: badretry
namespace: tests.retries
tasks:
  - id: t
    type: commands
    commands: ["true"]
    retry: {retry}
"""
    cases = {
        "{type: constant, maxAttempts: 3, interval: PT1S}": ["unknown retry property `maxAttempts`", "max_attempt"],
        "{type: constant, maxAttempt: 0, interval: PT1S}": ["`maxAttempt`", "≥ 1", "got 0"],
        "{type: linear, maxAttempt: 3, interval: PT1S}": ["`type`", "constant"],
        "{type: constant, interval: PT1S}": ["maxAttempt", "maxDuration"],
        "{type: constant, maxAttempt: 2, interval: soon}": ["`interval`", "soon"],
        "{type: constant, maxAttempt: 2, behavior: CREATE_NEW_EXECUTION}": ["`behavior`", "not supported"],
        "3": ["`retry` must be a mapping"],
    }
    for retry, fragments in cases.items():
        with pytest.raises(FlowError) as raised:
            load_flow_text(base.replace("{retry}", retry), "retry.yaml")
        problems = raised.value.problems
        assert len(problems) == 1, (retry, [str(problem) for problem in problems])
        assert problems[0].line == 8, (retry, str(problems[0]))
        for fragment in fragments:
            assert fragment in problems[0].message, (retry, problems[0].message)
    flow_level = "id: f\nnamespace: t\nretry: {type: constant, maxAttempt: 0}\ntasks:\n  - {id: t, type: return, format: x}\n"
    with pytest.raises(FlowError) as raised:
        load_flow_text(flow_level, "retry.yaml")
    assert any("maxAttempt" in problem.message and problem.line == 3 for problem in raised.value.problems)


def test_tflow_validate_exits_2_on_a_bad_retry(tmp_path: Path):
    path = write_flow(tmp_path, """
        id: badretry
        namespace: tests.retries
        tasks:
          - id: t
            type: commands
            commands: ["true"]
            retry: {type: constant, maxAttempt: 0}
        """, "bad.yaml")
    done = subprocess.run(tflow("validate", str(path)), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert f"{path}:7:" in done.stdout + done.stderr, done


# -- a lost worker is not an attempt -------------------------------------------------------------


LOST_WORKER_FLOW = """
id: lostworker
namespace: tests.retries
tasks:
  - id: both
    type: parallel
    tasks:
      - id: survivor
        type: commands
        retry: {type: constant, interval: PT0.1S, maxAttempt: 2}
        commands:
          - echo "survivor {{ taskrun.attemptsCount }} $(date +%s.%N)" >> <<log>>
          - if [ ! -e <<dir>>/survivor.seen ]; then touch <<dir>>/survivor.seen; sleep 30 & echo $! > <<dir>>/survivor.pid; wait $!; fi
          - sleep 0.5
      - id: doomed
        type: commands
        retry: {type: constant, interval: PT0.1S, maxAttempt: 2}
        commands:
          - echo "doomed {{ taskrun.attemptsCount }} $(date +%s.%N)" >> <<log>>
          - if [ ! -e <<dir>>/doomed.seen ]; then touch <<dir>>/doomed.seen; sleep 30 & echo $! > <<dir>>/doomed.pid; wait $!; fi
          - exit 5
"""


def _start_worker(address: str, task_queue: str, output: Path) -> subprocess.Popen[bytes]:
    with open(output, "ab") as sink:
        return subprocess.Popen(
            tflow("worker", "--address", address, "--task-queue", task_queue),
            cwd=REPO, env=cli_env(), stdout=sink, stderr=subprocess.STDOUT,
        )


async def test_a_lost_worker_is_redispatched_without_costing_an_attempt(
    client: Client, temporal_address: str, task_queue: str, tmp_path: Path
):
    log = tmp_path / "attempts.log"
    flow = write_flow(tmp_path, fill(LOST_WORKER_FLOW, log=log, dir=tmp_path), "lost.yaml")
    handle = await start_run(client, load_flow(flow), task_queue=task_queue)
    pids = [tmp_path / "survivor.pid", tmp_path / "doomed.pid"]

    first = _start_worker(temporal_address, task_queue, tmp_path / "worker1.log")
    try:
        ready = lambda: all(pid.exists() and pid.read_text().strip() for pid in pids)  # noqa: E731
        assert await asyncio.to_thread(wait_until, ready, 30), "the tasks never started on the first worker"
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    finally:
        if first.poll() is None:
            first.kill()

    second = _start_worker(temporal_address, task_queue, tmp_path / "worker2.log")
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(wait_result(handle), timeout=HEARTBEAT_TIMEOUT.total_seconds() + 30)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    print(f"run ended {time.monotonic() - started:.1f}s after the second worker started")

    survivor, doomed = task_run(result, "survivor"), task_run(result, "doomed")
    # The re-dispatched run of `survivor` succeeds: one attempt, though its commands started twice.
    assert survivor["state"] == "SUCCESS", survivor
    assert survivor["attempts"] == 1, "a re-dispatch after a lost worker is not an attempt"
    assert [line.split()[:2] for line in log.read_text().splitlines() if line.startswith("survivor")] == [
        ["survivor", "0"], ["survivor", "0"],
    ]
    # `doomed` fails on purpose after the re-dispatch: both attempts of its retry are its own failures.
    assert doomed["state"] == "FAILED"
    assert doomed["error"]["type"] == "CommandFailed"
    assert doomed["attempts"] == 2
    assert [line.split()[:2] for line in log.read_text().splitlines() if line.startswith("doomed")] == [
        ["doomed", "0"], ["doomed", "0"], ["doomed", "1"],
    ], "lost worker (not counted), then attempt 1 fails, then attempt 2 fails"
    assert result["state"] == "FAILED"
    assert len(result["task_runs"]) == 3
