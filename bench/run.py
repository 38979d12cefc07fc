"""`make bench`: the interpreter against a hand-written Temporal workflow doing the same work.

    python -m bench.run [--reps 5] [--check] [--only fanout500,fanout100,chain100]

Starts its own dev server and two worker subprocesses with identical settings (bench.worker_proc):
the project's worker (FlowWorkflow + `tflow.commands`) and a plain Temporal worker running
bench.handwritten. Each scenario runs once per side as a warm-up, then `--reps` times per side,
alternating which side goes first; the table shows medians. Worker CPU per task comes from
/proc/<worker pid>/stat: the worker itself (utime+stime) and with its reaped children (the
shells: cutime+cstime); the CPU ratio uses self+children.

The last line of stdout is one JSON object (ratios, raw medians, targets, machine). Exit code 0,
or with --check 1 when a target is missed (a failed run misses its targets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError

from bench.common import (
    MAX_CONCURRENT_ACTIVITIES, CpuTimes, Processes, WorkerProcess, commands_task, dev_server,
    exit_on_sigterm, log, machine, now, parallel_flow, sequence_flow, write_flow,
)

RUN_TIMEOUT_S = 120.0
"""One run longer than this counts as failed (and is terminated), so the bench always ends."""
BUDGET_S = 330.0
"""Past this many seconds of measuring, remaining repetitions are skipped (the bench stays < ~6 min)."""

TARGETS = {  # JSON key: (limit, what it is)
    "fanout_ratio": (1.25, "fan-out 500 (50 in flight): interpreter s / hand-written s"),
    "fanout100_ratio": (1.5, "fan-out 100 (all at once): interpreter s / hand-written s"),
    "chain_ratio": (1.10, "chain of 100: interpreter s / hand-written s"),
    "worker_cpu_ratio": (2.0, "fan-out 500: interpreter / hand-written worker CPU per task (self+children)"),
}


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    tasks: int
    workflow: str
    args: list[Any]
    flow: dict[str, Any]


def scenarios() -> list[Scenario]:
    true = lambda i: commands_task(f"t{i}", ["true"])  # noqa: E731
    return [
        Scenario("fanout500", "fan-out 500, 50 in flight", 500, "BenchFanoutWindow", [500, 50],
                 parallel_flow("fanout500", [true(i) for i in range(500)], concurrent=50)),
        Scenario("fanout100", "fan-out 100, all at once", 100, "BenchFanoutAll", [100],
                 parallel_flow("fanout100", [true(i) for i in range(100)])),
        Scenario("chain100", "chain of 100", 100, "BenchChain", [100],
                 sequence_flow("chain100", [true(i) for i in range(100)])),
    ]


@dataclass
class Sample:
    seconds: float
    cpu: CpuTimes
    error: str | None = None


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    def median_s(self) -> float | None:
        return statistics.median(s.seconds for s in self.samples) if self.samples and not self.error else None

    def cpu_ms(self, tasks: int, total: bool) -> float | None:
        if not self.samples or self.error:
            return None
        return statistics.median((s.cpu.total_s if total else s.cpu.self_s) for s in self.samples) * 1000 / tasks


class StuckRun(Exception):
    """The run's workflow task keeps failing (a bug in the workflow code): it would never end."""


async def result_of(handle: Any, timeout: float) -> Any:
    """`handle.result()`, but give up after `timeout` or once the workflow task fails repeatedly."""
    waiting = asyncio.ensure_future(handle.result())
    deadline = now() + timeout
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=2.0)
            if done:
                return waiting.result()
            if now() > deadline:
                raise asyncio.TimeoutError()
            description = await handle.describe()
            pending = description.raw_description.pending_workflow_task
            if pending and pending.attempt >= 3:
                raise StuckRun(f"run {handle.id}: its workflow task failed {pending.attempt - 1} times (see the worker log)")
    finally:
        waiting.cancel()


class Bench:
    def __init__(self, client: Client, folder: Path, workers: dict[str, WorkerProcess]) -> None:
        self.client = client
        self.folder = folder
        self.workers = workers

    async def once(self, side: str, scenario: Scenario, loaded: Any) -> Sample:
        worker = self.workers[side]
        before = worker.cpu()
        started = now()
        error = None
        handle = None
        try:
            if side == "handwritten":
                handle = await self.client.start_workflow(
                    scenario.workflow, args=scenario.args, id=f"hw-{scenario.key}-{uuid.uuid4().hex[:8]}",
                    task_queue=worker.task_queue)
                await result_of(handle, RUN_TIMEOUT_S)
            else:
                from client.runs import start_run

                handle = await start_run(self.client, loaded, task_queue=worker.task_queue)
                result = await result_of(handle, RUN_TIMEOUT_S)
                state = result.get("state") if isinstance(result, dict) else None
                if state != "SUCCESS":
                    error = f"run {handle.id} ended in state {state!r}"
        except WorkflowFailureError as failure:
            cause = failure.cause
            error = f"run {handle.id if handle else '?'} FAILED: {type(cause).__name__}: {str(cause)[:300]}"
        except (asyncio.TimeoutError, StuckRun) as stuck:
            error = str(stuck) or f"run {handle.id if handle else '?'} did not end within {RUN_TIMEOUT_S:.0f}s"
            if isinstance(stuck, StuckRun):
                error += "; worker log tail:\n" + worker.log_tail(10)
            if handle is not None:
                try:
                    await handle.terminate("bench timeout")
                except Exception:  # noqa: BLE001
                    pass
        elapsed = now() - started
        if not worker.alive():
            error = f"the {side} worker process died:\n{worker.log_tail()}"
        return Sample(elapsed, worker.cpu() - before if worker.alive() else CpuTimes(0, 0), error)

    async def scenario(self, scenario: Scenario, reps: int, deadline: float) -> dict[str, Series]:
        loaded = None
        from temporal_flows.language.loader import load_flow

        loaded = load_flow(write_flow(self.folder, scenario.flow))
        series = {"handwritten": Series(), "interpreter": Series()}

        async def one(side: str, warmup: bool) -> None:
            if series[side].error:
                return
            sample = await self.once(side, scenario, loaded)
            tag = "warm-up" if warmup else "rep"
            if sample.error:
                series[side].error = sample.error
                log(f"  {scenario.key} {side:11} {tag}: FAILED after {sample.seconds:.2f}s: {sample.error}")
                return
            log(f"  {scenario.key} {side:11} {tag}: {sample.seconds:6.2f}s  cpu self {sample.cpu.self_s:5.2f}s"
                f" +children {sample.cpu.total_s:5.2f}s")
            if not warmup:
                series[side].samples.append(sample)

        log(f"{scenario.title}:")
        await one("handwritten", True)
        await one("interpreter", True)
        for rep in range(reps):
            if now() > deadline and rep >= 1:
                log(f"  time budget spent: {scenario.key} stops after {rep} repetitions")
                break
            order = ("handwritten", "interpreter") if rep % 2 == 0 else ("interpreter", "handwritten")
            for side in order:
                await one(side, False)
        return series


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(all_series: dict[str, dict[str, Series]], chosen: list[Scenario], reps: int,
           settings: dict[str, Any]) -> dict[str, Any]:
    medians: dict[str, Any] = {}
    rows = []
    for scenario in chosen:
        hw, it = all_series[scenario.key]["handwritten"], all_series[scenario.key]["interpreter"]
        entry = {
            "tasks": scenario.tasks,
            "handwritten_s": hw.median_s(), "interpreter_s": it.median_s(),
            "ratio": ratio(it.median_s(), hw.median_s()),
            "handwritten_cpu_ms_per_task": {"self": hw.cpu_ms(scenario.tasks, False), "self_children": hw.cpu_ms(scenario.tasks, True)},
            "interpreter_cpu_ms_per_task": {"self": it.cpu_ms(scenario.tasks, False), "self_children": it.cpu_ms(scenario.tasks, True)},
            "repetitions": {"handwritten": len(hw.samples), "interpreter": len(it.samples)},
            "errors": {side: s.error for side, s in (("handwritten", hw), ("interpreter", it)) if s.error},
        }
        entry["cpu_ratio"] = ratio(entry["interpreter_cpu_ms_per_task"]["self_children"],
                                   entry["handwritten_cpu_ms_per_task"]["self_children"])
        medians[scenario.key] = entry
        rows.append((scenario, entry))

    values = {
        "fanout_ratio": medians.get("fanout500", {}).get("ratio"),
        "fanout100_ratio": medians.get("fanout100", {}).get("ratio"),
        "chain_ratio": medians.get("chain100", {}).get("ratio"),
        "worker_cpu_ratio": medians.get("fanout500", {}).get("cpu_ratio"),
    }
    measured = {"fanout_ratio": "fanout500", "fanout100_ratio": "fanout100", "chain_ratio": "chain100",
                "worker_cpu_ratio": "fanout500"}
    targets = {}
    for key, (limit, what) in TARGETS.items():
        if measured[key] not in medians:
            continue  # scenario not run (--only)
        value = values[key]
        targets[key] = {"value": value, "limit": limit, "met": value is not None and value <= limit, "what": what}

    out = sys.stdout
    print("", file=out)
    print(f"Interpreter vs hand-written Temporal workflow — medians of {reps} repetitions after a warm-up,"
          f" worker max_concurrent_activities={MAX_CONCURRENT_ACTIVITIES}", file=out)
    head = (f"{'scenario':27} {'hand-written s':>14} {'interpreter s':>14} {'ratio':>6} {'target':>16}"
            f"   {'CPU ms/task hand-written':>25} {'CPU ms/task interpreter':>25} {'CPU ratio':>9}")
    print(head, file=out)
    print(f"{'':27} {'':>14} {'':>14} {'':>6} {'':>16}   {'self / self+children':>25} {'self / self+children':>25}"
          f" {'(+children)':>9}", file=out)
    print("-" * len(head), file=out)
    key_of = {"fanout500": "fanout_ratio", "fanout100": "fanout100_ratio", "chain100": "chain_ratio"}
    for scenario, entry in rows:
        t = targets.get(key_of[scenario.key])
        target = f"≤{t['limit']:.2f} {'met' if t['met'] else 'MISSED'}" if t else ""
        hwc, itc = entry["handwritten_cpu_ms_per_task"], entry["interpreter_cpu_ms_per_task"]
        it_s = fmt(entry["interpreter_s"], 3) if "interpreter" not in entry["errors"] else "FAILED"
        hw_s = fmt(entry["handwritten_s"], 3) if "handwritten" not in entry["errors"] else "FAILED"
        print(f"{scenario.title:27} {hw_s:>14} {it_s:>14} {fmt(entry['ratio']):>6} {target:>16}"
              f"   {fmt(hwc['self']) + ' / ' + fmt(hwc['self_children']):>25}"
              f" {fmt(itc['self']) + ' / ' + fmt(itc['self_children']):>25} {fmt(entry['cpu_ratio']):>9}", file=out)
    print("", file=out)
    print("Targets (the CPU ratio uses worker self+children CPU, i.e. including the task shells):", file=out)
    for key, t in targets.items():
        print(f"  {key:17} {fmt(t['value']):>6}  ≤ {t['limit']:.2f}  {'met' if t['met'] else 'MISSED':6}  {t['what']}", file=out)
    errors = [f"{key} {side}: {msg}" for key, entry in medians.items() for side, msg in entry["errors"].items()]
    for line in errors:
        print(f"  FAILED {line}", file=out)
    print("", file=out)
    return {
        **values,
        "targets": targets,
        "all_targets_met": all(t["met"] for t in targets.values()),
        "medians": medians,
        "failures": errors,
        "repetitions": reps,
        "worker_settings": settings,
        "machine": machine(),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    chosen = [s for s in scenarios() if not args.only or s.key in args.only.split(",")]
    with tempfile.TemporaryDirectory(prefix="tflow-bench-") as tmp, Processes() as procs:
        folder = Path(tmp)
        async with dev_server(folder) as server:
            client = await Client.connect(server.address)
            suffix = uuid.uuid4().hex[:6]
            interp = procs.add(WorkerProcess("interpreter", server.address, f"bench-interp-{suffix}",
                                             folder / "worker-interpreter.log"))
            await interp.start()
            settings = interp.reported.get("settings", {})
            hand = procs.add(WorkerProcess("handwritten", server.address, f"bench-hand-{suffix}",
                                           folder / "worker-handwritten.log", settings=settings))
            await hand.start()
            if hand.reported.get("settings") != settings:
                log(f"warning: worker settings differ:\n  interpreter {settings}\n  hand-written {hand.reported.get('settings')}")
            log(f"workers ready (interpreter pid {interp.pid}, hand-written pid {hand.pid}); settings {json.dumps(settings)}")
            bench = Bench(client, folder, {"interpreter": interp, "handwritten": hand})
            deadline = now() + args.budget
            results = {}
            for scenario in chosen:
                results[scenario.key] = await bench.scenario(scenario, args.reps, deadline)
            return report(results, chosen, args.reps, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description="interpreter vs hand-written Temporal workflow")
    parser.add_argument("--reps", type=int, default=5, help="measured repetitions per side and scenario (after one warm-up)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", default="", help="comma-separated scenarios: fanout500,fanout100,chain100")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds of measuring before repetitions are cut short")
    args = parser.parse_args()
    exit_on_sigterm()
    summary = asyncio.run(main_async(args))
    sys.stdout.flush()
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    code = 1 if args.check and not summary["all_targets_met"] else 0
    sys.stderr.flush()
    import os

    os._exit(code)  # the SDK's native threads can abort interpreter finalization


if __name__ == "__main__":
    main()
