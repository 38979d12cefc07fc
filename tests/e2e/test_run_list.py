"""`tflow list` filters (in-process through `client.run_list`, and through the real CLI as separate
processes) and `tflow status` labels against the session's dev server, served by an in-process worker: five runs of flows in two flow namespaces
end SUCCESS (twice, one with `stage=prod` set by a labels task, its sibling `stage=dev`), FAILED,
WARNING and PAUSED (then CANCELLED); `--label`, `--state` (each, and several), `--flow-namespace`
(a namespace holds the ones under it, not a mere text prefix), `--since` (a duration, an ISO time
between two batches of runs) list exactly the runs expected; bad `--state`/`--since` exit 2."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from client.run_list import RunFilter, find_runs, since_time
from client.runs import start_run, summary, wait_result
from temporal_flows.language.loader import load_flow
from temporal_flows.metadata import labels_search_attribute_key
from tests.support import REPO, cli_env, fill, tflow, write_flow

SETTLED_WITHIN_S = 15.0
"""Visibility lags a run's history a little; the runs are listed as they ended within this."""

STAGED = """
id: staged
namespace: <<root>>.prod
inputs:
  - id: x
    type: STRING
tasks:
  - id: set
    type: io.kestra.plugin.core.execution.Labels
    labels:
      stage: "{{ inputs.x }}"
  - id: read
    type: return
    format: "{{ labels.stage }}"
"""

BROKEN = """
id: broken
namespace: <<root>>.ops
tasks:
  - id: boom
    type: fail
    errorMessage: on purpose
"""

WARNED = """
id: warned
namespace: <<root>>.ops
tasks:
  - id: shaky
    type: fail
    allowFailure: true
"""

PAUSED = """
id: waiting
namespace: <<root>>.ops
tasks:
  - id: hold
    type: io.kestra.plugin.core.flow.Pause
"""


async def tflow_cli(*args: str) -> tuple[int, str, str]:
    """One `tflow` process (async, so the in-process worker keeps answering meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *tflow(*args), cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert "Traceback" not in stderr.decode(), stderr.decode()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def start(client: Client, folder: Path, text: str, root: str, task_queue: str, name: str,
                **options: Any) -> WorkflowHandle[Any, Any]:
    path = write_flow(folder, fill(text, root=root), f"{name}.yaml")
    return await start_run(client, load_flow(path), task_queue=task_queue, **options)


async def settled(client: Client, root: str, expected: dict[str, str], staged: set[str]) -> None:
    """Wait until visibility lists exactly the runs of `expected` (run id → Temporal status) in
    those statuses, the `staged` ones with the `stage` label their labels task set."""
    query = f"TflowNamespace STARTS_WITH '{root}.'"
    deadline = time.monotonic() + SETTLED_WITHIN_S
    while True:
        executions = [execution async for execution in client.list_workflows(query)]
        statuses = {execution.id: execution.status.name if execution.status else None for execution in executions}
        labelled = {execution.id for execution in executions if any(
            term.startswith("stage=") for term in execution.typed_search_attributes.get(labels_search_attribute_key()) or [])}
        if statuses == expected and staged <= labelled:
            return
        assert time.monotonic() < deadline, f"visibility did not settle: {statuses} != {expected}"
        await asyncio.sleep(0.2)


async def listed(address: str, *args: str) -> list[str]:
    """The run ids `tflow list --json` prints for `args`."""
    code, stdout, stderr = await tflow_cli("list", "--json", "--address", address, "--limit", "50", *args)
    assert code == 0, stderr
    return [row["run_id"] for row in json.loads(stdout)]


async def test_list_filters_by_label_state_flow_namespace_and_start_time(
    client: Client, worker: str, temporal_address: str, tmp_path: Path
):
    root = f"e2e.list{uuid.uuid4().hex[:8]}"
    prod, dev, failed = await asyncio.gather(
        start(client, tmp_path, STAGED, root, worker, "staged", inputs={"x": f"prod-{root}"}),
        start(client, tmp_path, STAGED, root, worker, "staged", inputs={"x": f"dev-{root}"}),
        start(client, tmp_path, BROKEN, root, worker, "broken"),
    )
    ended = await asyncio.gather(*(wait_result(handle) for handle in (prod, dev, failed)))
    assert [result["state"] for result in ended] == ["SUCCESS", "SUCCESS", "FAILED"]
    first_batch_started = max([(await handle.describe()).start_time for handle in (prod, dev, failed)])

    warned, paused = await asyncio.gather(
        start(client, tmp_path, WARNED, root, worker, "warned"),
        start(client, tmp_path, PAUSED, root, worker, "waiting"),
    )
    assert (await wait_result(warned))["state"] == "WARNING"
    await wait_paused(paused)
    since = min([(await handle.describe()).start_time for handle in (warned, paused)])
    assert since > first_batch_started
    await settled(client, root, {prod.id: "COMPLETED", dev.id: "COMPLETED", failed.id: "FAILED",
                                 warned.id: "COMPLETED", paused.id: "RUNNING"}, {prod.id, dev.id})

    def runs(**wanted: Any) -> Any:
        return find_runs(client, 50, RunFilter(**{"namespace": root, **wanted}))

    answers = [sorted(row["run_id"] for row in listing.rows) for listing in await asyncio.gather(
        runs(states=frozenset({"FAILED"})),
        runs(states=frozenset({"WARNING"})),
        runs(states=frozenset({"SUCCESS"})),
        runs(states=frozenset({"PAUSED"})),
        runs(states=frozenset({"RUNNING"})),
        runs(namespace=f"{root}.prod"),
        runs(namespace=f"{root}.pro"),
        runs(),
        runs(since=since_time("1m", datetime.now(timezone.utc))),
        runs(since=since, states=frozenset({"PAUSED", "FAILED"})),
    )]
    assert answers[0] == [failed.id]
    assert answers[1] == [warned.id]
    assert answers[2] == sorted([prod.id, dev.id])
    assert answers[3] == [paused.id]
    assert answers[4] == []  # paused, not running
    assert answers[5] == sorted([prod.id, dev.id])
    assert answers[6] == []  # `root.pro` does not hold `root.prod`
    everything = sorted([prod.id, dev.id, failed.id, warned.id, paused.id])
    assert answers[7] == answers[8] == everything
    assert answers[9] == [paused.id]  # started since the second batch began, and paused or failed

    # The same through the CLI: its options, their parsing (an ISO time with Z) and its table.
    address = temporal_address
    iso = since.isoformat().replace("+00:00", "Z")
    by_label, failed_or_paused, since_iso, (code, stdout, stderr) = await asyncio.gather(
        listed(address, "--label", f"stage=prod-{root}"),
        listed(address, "--flow-namespace", root, "--state", "FAILED", "--state", "paused"),
        listed(address, "--flow-namespace", root, "--since", iso),
        tflow_cli("list", "--address", address, "--flow-namespace", root),
    )
    assert by_label == [prod.id]  # the label a labels task set, not its sibling's
    assert sorted(failed_or_paused) == sorted([failed.id, paused.id])
    assert sorted(since_iso) == sorted([warned.id, paused.id])
    table = {line.split()[0]: line.split()[2] for line in stdout.splitlines()[1:]}
    assert code == 0 and table == {prod.id: "SUCCESS", dev.id: "SUCCESS", failed.id: "FAILED",
                                   warned.id: "WARNING", paused.id: "PAUSED"}, stdout + stderr

    await paused.cancel()
    assert (await wait_result(paused))["state"] == "CANCELLED"
    await settled(client, root, {prod.id: "COMPLETED", dev.id: "COMPLETED", failed.id: "FAILED",
                                 warned.id: "COMPLETED", paused.id: "CANCELED"}, {prod.id, dev.id})
    assert [row["run_id"] for row in (await runs(states=frozenset({"CANCELLED"}))).rows] == [paused.id]


async def test_status_shows_labels_a_task_set_and_bad_filters_exit_2(
    client: Client, worker: str, temporal_address: str, tmp_path: Path
):
    root = f"e2e.status{uuid.uuid4().hex[:8]}"
    handle = await start(client, tmp_path, STAGED, root, worker, "staged", inputs={"x": "prod"}, labels={"team": "data"})
    assert (await wait_result(handle))["state"] == "SUCCESS"
    (code, stdout, stderr), (human_code, human, _), bad_state, bad_since = await asyncio.gather(
        tflow_cli("status", handle.id, "--json", "--address", temporal_address),
        tflow_cli("status", handle.id, "--address", temporal_address),
        tflow_cli("list", "--address", temporal_address, "--state", "DONE"),
        tflow_cli("list", "--address", temporal_address, "--since", "yesterday"),
    )
    assert code == 0, stderr
    assert json.loads(stdout)["labels"] == {"team": "data", "stage": "prod"}
    assert human_code == 0 and "Labels: stage=prod, team=data" in human, human
    assert bad_state[0] == 2 and "--state 'DONE': expected one of RUNNING, PAUSED, QUEUED, SUCCESS, WARNING, FAILED, CANCELLED" in bad_state[2]
    assert bad_since[0] == 2 and "--since: expected a duration like `1h` or `7d`, or an ISO date-time" in bad_since[2]


async def wait_paused(handle: WorkflowHandle[Any, Any]) -> None:
    deadline = time.monotonic() + SETTLED_WITHIN_S
    while (await summary(handle))["state"] != "PAUSED":
        assert time.monotonic() < deadline, "the run did not pause"
        await asyncio.sleep(0.1)
