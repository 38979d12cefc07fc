"""Record workflow histories for the replay tests: `make record-histories LABEL=v4`.

Each flow under `tests/histories/flows/` runs on a fresh dev server; its history is saved as
`<flow>.<LABEL>.json` beside it (the first recording has no label), and the history of each child
run it started (subflows) as `<flow>.<LABEL>.child-<n>.json` (from v5 on). Existing files are never
overwritten: every recorded generation keeps replaying, which is what proves that runs started by
an older interpreter survive a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory

from client.devserver import DevServer
from temporal_flows.language.loader import load_flow
from client.resume import resume_run
from client.runs import start_run, summary, wait_result
from client.worker import create_worker

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "flows"
TASK_QUEUE = "record-histories"
RESUME_INPUTS = {"reason": "recorded"}
"""What the recorder gives a pause's `onResume` inputs."""


async def record(flow_file: Path, client: Client, target: Path) -> Path:
    loaded = load_flow(flow_file)
    handle = await start_run(client, loaded, task_queue=TASK_QUEUE, run_id=f"replay-{target.stem}")
    if flow_file.stem.startswith("cancel"):
        await asyncio.sleep(1.5)
        await handle.cancel()
    if flow_file.stem.startswith("pause"):
        await resume_without_timers(client, handle)
    await wait_result(handle)
    history = await handle.fetch_history()
    write_history(history, target)
    for index, child_id in enumerate(child_run_ids(history), start=1):
        child = client.get_workflow_handle(child_id)
        with contextlib.suppress(WorkflowFailureError):
            await child.result()  # a child not waited for may still run
        write_history(await child.fetch_history(), target.with_name(f"{target.stem}.child-{index}.json"))
    return target


def write_history(history: WorkflowHistory, target: Path) -> None:
    target.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


def child_run_ids(history: WorkflowHistory) -> list[str]:
    """The ids of the child runs (subflows) a run started, in order."""
    return [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]


async def resume_without_timers(client: Client, handle: Any) -> None:
    """Until the run ends, resume (with `RESUME_INPUTS`) each pause that only a resume ends, as
    `tflow resume` would."""
    while True:
        current = await summary(handle)
        if current["state"] not in ("RUNNING", "PAUSED"):
            return
        for paused in current.get("waiting_for") or []:
            if paused["resumes_at"] is None and paused["fails_at"] is None:
                inputs = {name: RESUME_INPUTS[name] for name in paused["on_resume"]}
                await resume_run(client, handle.id, paused["task_run_id"], inputs)
        await asyncio.sleep(0.1)


async def main(label: str) -> None:
    targets = {flow: HERE / f"{flow.stem}.{label}.json" for flow in sorted(FLOWS.glob("*.yaml"))}
    existing = [target.name for target in targets.values() if target.exists()]
    if existing:
        raise SystemExit(f"already recorded: {', '.join(existing)}; choose a new LABEL")
    with tempfile.TemporaryDirectory() as folder:
        server = DevServer(port=0, ui_port=0, db_filename=Path(folder) / "record.db", headless=True)
        await server.astart()
        try:
            client = await Client.connect(server.address)
            async with create_worker(client, TASK_QUEUE):
                for flow_file, target in targets.items():
                    print(f"recorded {await record(flow_file, client, target)}")
        finally:
            server.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.histories.record LABEL   (e.g. v3)")
    asyncio.run(main(sys.argv[1]))
