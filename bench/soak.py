"""`make soak`: 20,000 `commands` task launches at 50 concurrent through the interpreter.

    python -m bench.soak [--tasks 20000] [--per-run 2000] [--concurrent 50] [--stall 30]

A single run cannot hold 20,000 activities (Temporal's history limit), so the tasks are split into
runs of `--per-run` tasks, each one `parallel` group with `concurrent: 50`, run one after another
on a real worker subprocess (bench.worker_proc). Every task appends one byte to its run's counter
file (`printf . >> count-N`); a watchdog watches those file sizes — independent of the
interpreter's result or query format — and fails the soak (exit 1, with the run ids and the
worker log's tail) when no task ends for `--stall` seconds. Prints launches/s at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError

from bench.common import (
    Processes, WorkerProcess, commands_task, dev_server, exit_on_sigterm, log, now, parallel_flow, write_flow,
)


class SoakFailed(Exception):
    pass


class Counters:
    """The per-run counter files; their total size is the number of tasks that ended."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, index: int) -> Path:
        return self.folder / f"count-{index}"

    def size(self, index: int) -> int:
        try:
            return os.stat(self.path(index)).st_size
        except FileNotFoundError:
            return 0

    def total(self, runs: int) -> int:
        return sum(self.size(i) for i in range(runs))


async def run_one(client: Client, folder: Path, counters: Counters, index: int, tasks: int,
                  concurrent: int, task_queue: str, run_ids: list[str]) -> float:
    from temporal_flows.language.loader import load_flow
    from client.runs import start_run

    children = [commands_task(f"t{i}", [f"printf . >> {counters.path(index)}"]) for i in range(tasks)]
    loaded = load_flow(write_flow(folder, parallel_flow(f"soak-{index}", children, concurrent=concurrent)))
    started = now()
    handle = await start_run(client, loaded, task_queue=task_queue)
    run_ids.append(handle.id)
    try:
        result = await handle.result()
    except WorkflowFailureError as failure:
        raise SoakFailed(f"run {handle.id} FAILED: {type(failure.cause).__name__}: {str(failure.cause)[:500]}") from None
    state = result.get("state") if isinstance(result, dict) else None
    if state != "SUCCESS":
        raise SoakFailed(f"run {handle.id} ended in state {state!r}")
    seconds = now() - started
    done = counters.size(index)
    if done < tasks:
        raise SoakFailed(f"run {handle.id} succeeded but only {done} of its {tasks} tasks ran")
    note = f" (+{done - tasks} re-executions)" if done > tasks else ""
    log(f"run {index + 1}: {handle.id}: {tasks} tasks in {seconds:.1f}s ({tasks / seconds:.1f}/s){note}")
    return seconds


async def watchdog(counters: Counters, runs: int, stall: float, total: int, worker: WorkerProcess,
                   started: float) -> None:
    """Raise SoakFailed when no task ended for `stall` seconds or the worker died; log progress."""
    last, last_change, last_log = -1, now(), now()
    while True:
        await asyncio.sleep(1.0)
        if not worker.alive():
            raise SoakFailed("the worker process died")
        done = counters.total(runs)
        if done != last:
            last, last_change = done, now()
        elif now() - last_change > stall:
            raise SoakFailed(f"no task ended for {stall:.0f}s (stuck at {done} of {total} tasks)")
        if now() - last_log >= 15:
            last_log = now()
            elapsed = now() - started
            log(f"  progress: {done}/{total} tasks in {elapsed:.0f}s ({done / elapsed:.1f}/s)")


async def soak(args: argparse.Namespace) -> int:
    runs = -(-args.tasks // args.per_run)
    sizes = [min(args.per_run, args.tasks - i * args.per_run) for i in range(runs)]
    with tempfile.TemporaryDirectory(prefix="tflow-soak-") as tmp, Processes() as procs:
        folder = Path(tmp)
        counters = Counters(folder)
        async with dev_server(folder, "soak") as server:
            client = await Client.connect(server.address)
            worker = procs.add(WorkerProcess("interpreter", server.address, f"soak-{uuid.uuid4().hex[:6]}",
                                             folder / "worker.log"))
            await worker.start()
            log(f"worker ready (pid {worker.pid}, log {worker.log_path}); {args.tasks} tasks in {runs} runs "
                f"of up to {args.per_run}, {args.concurrent} concurrent")
            run_ids: list[str] = []
            started = now()
            cpu_before = worker.cpu()

            async def all_runs() -> None:
                for index, size in enumerate(sizes):
                    await run_one(client, folder, counters, index, size, args.concurrent, worker.task_queue, run_ids)

            runner = asyncio.ensure_future(all_runs())
            guard = asyncio.ensure_future(watchdog(counters, runs, args.stall, args.tasks, worker, started))
            try:
                done, _ = await asyncio.wait({runner, guard}, return_when=asyncio.FIRST_COMPLETED)
                if runner in done:
                    runner.result()
                else:
                    guard.result()
            except SoakFailed as failure:
                print(f"SOAK FAILED: {failure}")
                print(f"tasks ended: {counters.total(runs)} of {args.tasks} after {now() - started:.1f}s")
                print(f"run ids: {', '.join(run_ids) or '(none started)'}")
                if run_ids:
                    print(f"the current run: {run_ids[-1]}")
                print(f"worker log ({worker.log_path}), last lines:\n{worker.log_tail(40)}")
                return 1
            finally:
                for task in (runner, guard):
                    task.cancel()
            elapsed = now() - started
            cpu = worker.cpu() - cpu_before if worker.alive() else None
            total = counters.total(runs)
            print(f"soak: {total} task launches ({args.tasks} planned) in {runs} runs of up to {args.per_run}, "
                  f"{args.concurrent} concurrent: {elapsed:.1f}s, {total / elapsed:.1f} launches/s")
            if cpu is not None:
                print(f"worker CPU: {cpu.self_s:.1f}s self, {cpu.total_s:.1f}s with its task shells "
                      f"({cpu.total_s * 1000 / max(total, 1):.2f} ms/task)")
            print(f"run ids: {', '.join(run_ids)}")
            return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="soak: many commands tasks through the interpreter")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--per-run", type=int, default=2_000)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--stall", type=float, default=30.0, help="fail when no task ends for this many seconds")
    args = parser.parse_args()
    exit_on_sigterm()
    code = asyncio.run(soak(args))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the SDK's native threads can abort interpreter finalization


if __name__ == "__main__":
    main()
