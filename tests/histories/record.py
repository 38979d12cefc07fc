"""Record workflow histories for the replay tests: `make record-histories LABEL=v4`.

Each flow under `tests/histories/flows/` runs on a fresh dev server; its history is saved as
`<flow>.<LABEL>.json` beside it (the first recording has no label). Existing files are never
overwritten: every recorded generation keeps replaying, which is what proves that runs started by
an older interpreter survive a change.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from temporalio.client import Client

from client.devserver import DevServer
from temporal_flows.loader import load_flow
from client.runs import start_run, wait_result
from client.worker import create_worker

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "flows"
TASK_QUEUE = "record-histories"


async def record(flow_file: Path, client: Client, target: Path) -> Path:
    loaded = load_flow(flow_file)
    handle = await start_run(client, loaded, task_queue=TASK_QUEUE, run_id=f"replay-{target.stem}")
    if flow_file.stem.startswith("cancel"):
        await asyncio.sleep(1.5)
        await handle.cancel()
    await wait_result(handle)
    history = await handle.fetch_history()
    target.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return target


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
