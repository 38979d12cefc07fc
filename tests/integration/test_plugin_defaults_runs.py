"""Plugin defaults on a real server: a run whose tasks take what they do from defaults (the flow's
`pluginDefaults` by prefix, a `--defaults` file's by type and forced) and a shell `Script` run as
`commands`; what the processes saw proves the merged tasks are the ones that ran."""

from __future__ import annotations

import textwrap
from pathlib import Path

from temporalio.client import Client

from client.runs import start_run, wait_result
from temporal_flows.language.loader import load_defaults_file, load_flow
from tests.support import duration, task_run, write_flow

FLOW = r"""
id: defaulted
namespace: company.team
tasks:
  - id: greet
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "::{\"outputs\":{\"greeting\":\"$GREETING\",\"before\":\"$BEFORE\"}}::"
  - id: parallel
    type: io.kestra.core.tasks.flows.Parallel
    tasks:
      - id: script
        type: io.kestra.plugin.scripts.shell.Script
        script: |
          word="$GREETING"
          echo "::{\"outputs\":{\"shell\":\"$word\",\"before\":\"$BEFORE\"}}::"
      - id: slow
        type: io.kestra.plugin.scripts.shell.Commands
        allowFailure: true
        timeout: PT60S
        commands: [sleep 30]
pluginDefaults:
  - type: io.kestra.plugin.scripts
    values:
      beforeCommands: ["export BEFORE=flow-default"]
"""

DEFAULTS = """
pluginDefaults:
  - type: io.kestra.plugin.scripts.shell
    values:
      env: {GREETING: from-the-file}
  - type: io.kestra.plugin.scripts.shell.Commands
    forced: true
    values:
      timeout: PT1S
"""


async def test_a_run_takes_its_tasks_properties_from_the_flows_and_the_files_defaults(
        client: Client, worker: str, tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text(textwrap.dedent(DEFAULTS).lstrip())
    loaded = load_flow(write_flow(tmp_path, FLOW), load_defaults_file(tmp_path / "defaults.yaml"))
    result = await wait_result(await start_run(client, loaded, task_queue=worker))

    assert result["state"] == "WARNING", result["error"]  # `slow` failed, allowed to
    assert task_run(result, "greet")["outputs"]["vars"] == {"greeting": "from-the-file", "before": "flow-default"}
    assert task_run(result, "script")["outputs"]["vars"] == {"shell": "from-the-file", "before": "flow-default"}
    slow = task_run(result, "slow")
    assert slow["state"] == "WARNING" and "timed out after 1s" in str(slow.get("error")), slow  # failed, allowed to
    took = duration(slow)
    print(f"\n[plugin defaults] `slow` (own timeout 60 s, forced default 1 s) ended after {took:.2f} s")
    assert took < 3.5, f"the forced 1 s timeout did not apply: {took:.2f} s"
