"""Group semantics on a real server: strategies, cancellation that kills processes, limits,
timeouts, allowFailure, runIf/disabled, outputs between tasks, and run-time template errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from temporalio.client import Client

from tests.support import duration, peak_concurrency, pid_alive, run_flow, task_run, wait_until, write_flow


async def test_fail_fast_cancels_running_siblings_and_kills_their_processes(client: Client, worker: str, tmp_path: Path):
    pid_file = tmp_path / "slow.pid"
    flow = write_flow(tmp_path, f"""
        id: failfast
        namespace: tests
        tasks:
          - id: tolerated
            type: commands
            allowFailure: true
            commands: ["exit 4"]
          - id: group
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: slow
                type: commands
                commands: ["sleep 30 & echo $! > {pid_file}; wait $!"]
              - id: broken
                type: commands
                commands: ["sleep 0.5", "echo 'broken on purpose' >&2", "exit 3"]
              - id: queued
                type: return
                format: "{{{{ task.id }}}}"
          - id: never
            type: return
            format: never
        """)
    started = time.monotonic()
    result = await run_flow(client, flow, worker)
    assert time.monotonic() - started < 15, "the failure should end the group without waiting for `slow`"
    assert result["state"] == "FAILED"
    assert result["error"]["task_id"] == "broken", "the run's error names the task that failed first"
    assert "broken on purpose" in result["error"]["message"]
    assert task_run(result, "tolerated")["state"] == "WARNING"
    assert task_run(result, "broken")["state"] == "FAILED"
    assert task_run(result, "broken")["error"]["type"] == "CommandFailed"
    assert task_run(result, "slow")["state"] == "CANCELLED"
    assert task_run(result, "group")["state"] == "FAILED"
    assert "never" not in [run["task_id"] for run in result["task_runs"]]
    assert not pid_alive(int(pid_file.read_text())), "a cancelled task's process must be killed"


async def test_wait_all_lets_siblings_finish_and_still_fails(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: waitall
        namespace: tests
        tasks:
          - id: group
            type: parallel
            tasks:
              - id: slow
                type: commands
                commands: ["sleep 1"]
              - id: broken
                type: commands
                commands: ["exit 2"]
        """)
    result = await run_flow(client, flow, worker)
    assert task_run(result, "slow")["state"] == "SUCCESS"
    assert task_run(result, "broken")["state"] == "FAILED"
    assert task_run(result, "group")["state"] == "FAILED"
    assert result["state"] == "FAILED"


async def test_race_takes_the_first_success_and_cancels_the_rest(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: race
        namespace: tests
        tasks:
          - id: group
            type: parallel
            strategy: race
            tasks:
              - id: loser
                type: commands
                commands: ["sleep 20"]
              - id: failing
                type: commands
                commands: ["exit 1"]
              - id: winner
                type: commands
                commands: ["sleep 0.5", "echo '::{\\"outputs\\": {\\"who\\": \\"winner\\"}}::'"]
          - id: after
            type: return
            format: "{{ tasks.group.output.vars.who }}"
        """)
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS"
    assert task_run(result, "winner")["state"] == "SUCCESS"
    assert task_run(result, "failing")["state"] == "FAILED"
    assert task_run(result, "loser")["state"] == "CANCELLED"
    assert task_run(result, "after")["outputs"]["value"] == "winner"


async def test_concurrency_limit_is_respected(client: Client, worker: str, tmp_path: Path):
    log = tmp_path / "spans.log"
    children = "\n".join(
        f"""
              - id: c{index}
                type: commands
                commands: ["echo start $(date +%s.%N) >> {log}", "sleep 0.6", "echo end $(date +%s.%N) >> {log}"]"""
        for index in range(5)
    )
    flow = write_flow(tmp_path, f"""
        id: limited
        namespace: tests
        tasks:
          - id: group
            type: parallel
            concurrent: 2
            tasks:{children}
        """)
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS"
    assert peak_concurrency(log) == 2


async def test_run_max_workers_caps_every_group(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: capped
        namespace: tests
        tasks:
          - id: group
            type: parallel
            tasks:
              - {id: a, type: commands, commands: ["sleep 0.5"]}
              - {id: b, type: commands, commands: ["sleep 0.5"]}
              - {id: c, type: commands, commands: ["sleep 0.5"]}
        """)
    result = await run_flow(client, flow, worker, max_workers=1)
    assert duration(task_run(result, "group")) >= 1.5


async def test_group_timeout_cancels_and_fails(client: Client, worker: str, tmp_path: Path):
    pid_file = tmp_path / "sleep.pid"
    flow = write_flow(tmp_path, f"""
        id: timeout
        namespace: tests
        tasks:
          - id: group
            type: sequential
            timeout: PT1S
            tasks:
              - id: long
                type: commands
                commands: ["sleep 30 & echo $! > {pid_file}; wait $!"]
              - id: next
                type: return
                format: x
        """)
    result = await run_flow(client, flow, worker)
    group = task_run(result, "group")
    assert group["state"] == "FAILED"
    assert group["error"]["type"] == "Timeout"
    assert 1 <= duration(group) < 10
    assert task_run(result, "long")["state"] == "CANCELLED"
    assert "next" not in [run["task_id"] for run in result["task_runs"]]
    assert await asyncio.to_thread(wait_until, lambda: not pid_alive(int(pid_file.read_text())), 5)


async def test_task_timeout_fails_the_task(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: tasktimeout
        namespace: tests
        tasks:
          - id: slow
            type: commands
            timeout: 500ms
            commands: ["sleep 20"]
        """)
    started = time.monotonic()
    result = await run_flow(client, flow, worker)
    assert time.monotonic() - started < 10
    slow = task_run(result, "slow")
    assert slow["state"] == "FAILED"
    assert slow["error"]["type"] == "Timeout"
    assert slow["attempts"] == 1


async def test_outputs_flow_between_tasks_and_conditions_skip(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: outputs
        namespace: tests
        variables:
          greeting: hello
        tasks:
          - id: produce
            type: commands
            env:
              NAME: "{{ vars.greeting }}"
            commands:
              - 'echo "::{\\"outputs\\": {\\"name\\": \\"$NAME\\"}, \\"metrics\\": [{\\"name\\": \\"rows\\", \\"type\\": \\"counter\\", \\"value\\": 7}]}::"'
          - id: use
            type: return
            format: "{{ outputs.produce.vars.name }} from {{ flow.namespace }}.{{ flow.id }}"
          - id: skipped
            type: return
            runIf: "{{ outputs.produce.exitCode == 1 }}"
            format: x
          - id: off
            type: return
            disabled: true
            format: x
        """)
    result = await run_flow(client, flow, worker)
    assert result["state"] == "SUCCESS"
    produce = task_run(result, "produce")
    assert produce["outputs"] == {"exitCode": 0, "vars": {"name": "hello"}}
    assert produce["metrics"][0]["name"] == "rows" and produce["metrics"][0]["value"] == 7
    assert task_run(result, "use")["outputs"]["value"] == "hello from tests.outputs"
    assert task_run(result, "skipped")["state"] == "SKIPPED"
    assert "off" not in [run["task_id"] for run in result["task_runs"]]


async def test_template_error_at_run_time_fails_the_task_not_the_worker(client: Client, worker: str, tmp_path: Path):
    flow = write_flow(tmp_path, """
        id: badtemplate
        namespace: tests
        tasks:
          - id: first
            type: return
            format: ok
          - id: second
            type: return
            format: "{{ outputs.first.nothing_here }}"
        """)
    result = await run_flow(client, flow, worker)
    second = task_run(result, "second")
    assert result["state"] == "FAILED"
    assert second["state"] == "FAILED"
    assert second["error"]["type"] == "ExpressionError"
    assert "outputs.first.nothing_here" in second["error"]["message"]
    # The same worker still runs the next flow.
    again = await run_flow(client, write_flow(tmp_path, "id: fine\nnamespace: tests\ntasks:\n  - {id: a, type: return, format: a}\n", "fine.yaml"), worker)
    assert again["state"] == "SUCCESS"
