"""`make foreach-scale`: a for-each of 1,000 and of 10,000 items with a pure body (`return`).

    python -m bench.foreach_scale [--sizes 1000,10000] [--limit 1.5]

Each size runs once on this script's own dev server with an interpreter worker subprocess, from
start to result (the ledger read back from the history included). Prints the wall time per item
for each size and, last, one JSON line; exits 1 when the per-item cost at the largest size is over
`--limit` × the cost at the smallest (the scheduler must do constant work per child event: no
rescans of every child, so 10,000 items must not cost O(n²)).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path

from bench.common import Processes, WorkerProcess, dev_server, log, machine, now, write_flow


def foreach_flow(size: int) -> dict:
    return {
        "id": f"foreach_{size}",
        "namespace": "bench",
        "tasks": [{
            "id": "each",
            "type": "foreach",
            "values": json.dumps(list(range(size))),
            "tasks": [{"id": "item", "type": "return", "format": "{{ taskrun.value }}"}],
        }],
    }


async def run_once(address: str, task_queue: str, path: Path, size: int) -> float:
    from temporalio.client import Client

    from temporal_flows.language.loader import load_flow
    from client.runs import start_run, wait_result

    client = await Client.connect(address)
    started = now()
    handle = await start_run(client, load_flow(path), task_queue=task_queue)
    result = await wait_result(handle)
    elapsed = now() - started
    if result["state"] != "SUCCESS" or len(result["task_runs"]) != size + 1:
        raise SystemExit(f"foreach of {size}: {result['state']} with {len(result['task_runs'])} task runs")
    return elapsed


async def main(sizes: list[int], limit: float) -> int:
    with tempfile.TemporaryDirectory() as folder, Processes() as processes:
        async with dev_server(Path(folder)) as server:
            queue = f"foreach-{uuid.uuid4().hex[:8]}"
            worker = await WorkerProcess("interpreter", server.address, queue, Path(folder) / "worker.log").start()
            processes.add(worker)
            await run_once(server.address, queue, write_flow(Path(folder), foreach_flow(100)), 100)  # warm-up
            per_item: dict[int, float] = {}
            for size in sizes:
                elapsed = await run_once(server.address, queue, write_flow(Path(folder), foreach_flow(size)), size)
                per_item[size] = elapsed / size
                log(f"for-each of {size:,} items: {elapsed:.2f} s, {per_item[size] * 1000:.3f} ms per item")
    smallest, largest = min(sizes), max(sizes)
    ratio = per_item[largest] / per_item[smallest]
    print(f"{'items':>8} {'ms per item':>12}")
    for size in sizes:
        print(f"{size:>8,} {per_item[size] * 1000:>12.3f}")
    print(json.dumps({
        "per_item_ms": {str(size): round(cost * 1000, 3) for size, cost in per_item.items()},
        "per_item_ratio": round(ratio, 2), "limit": limit, "machine": machine(),
    }))
    return 0 if ratio <= limit else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--limit", type=float, default=1.5)
    args = parser.parse_args()
    sys.exit(asyncio.run(main([int(size) for size in args.sizes.split(",")], args.limit)))
