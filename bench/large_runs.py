"""`make large-runs`: two large runs through the real CLI (`tflow run --json`) as subprocesses.

    python -m bench.large_runs [--only outputs,wide] [--timeout 900]

(a) `outputs`: 100 `commands` tasks in one `parallel`, each printing a 25 KB output through
    Kestra's protocol line `::{"outputs": {"blob": "xxx..."}}::`;
(b) `wide`: 2,500 `commands: ["true"]` tasks in one `parallel` without `concurrent`.

Each runs as `.venv/bin/tflow run FLOW --address <server> --task-queue Q --json` against this
script's own dev server, with a worker subprocess (bench.worker_proc) on Q. Checked: exit code 0,
stdout is exactly one JSON object, state SUCCESS, and `task_runs` holds every task run (the group's
own included: 101 and 2,501). Exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    REPO, Processes, WorkerProcess, commands_task, dev_server, exit_on_sigterm, log, now, parallel_flow, write_flow,
)

BLOB_CHARS = 25_000
BLOB_COMMAND = f"""printf '::{{"outputs": {{"blob": "%s"}}}}::\\n' "$(head -c {BLOB_CHARS} /dev/zero | tr '\\0' x)\""""


@dataclass(frozen=True)
class LargeRun:
    key: str
    title: str
    flow: dict[str, Any]
    task_runs: int


def large_runs() -> list[LargeRun]:
    return [
        LargeRun("outputs", f"100 tasks x {BLOB_CHARS // 1000} KB outputs in a parallel", parallel_flow(
            "large_outputs", [commands_task(f"t{i}", [BLOB_COMMAND]) for i in range(100)]), 101),
        LargeRun("wide", "2,500 tasks in a parallel without concurrent", parallel_flow(
            "large_wide", [commands_task(f"t{i}", ["true"]) for i in range(2_500)]), 2_501),
    ]


def tflow_executable() -> Path:
    beside = Path(sys.executable).parent / "tflow"
    return beside if beside.exists() else REPO / ".venv" / "bin" / "tflow"


def cli_env() -> dict[str, str]:
    """The caller's environment without TEMPORAL_* (the address is passed explicitly), this checkout first."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


async def run_cli(argv: list[str], timeout: float) -> tuple[int | None, str, str, float]:
    """(exit code or None on timeout, stdout, stderr, seconds); the CLI runs in its own process group."""
    started = now()
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env=cli_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        code: int | None = proc.returncode
    except (asyncio.TimeoutError, asyncio.CancelledError, KeyboardInterrupt):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
        code = None
        if not isinstance(sys.exc_info()[1], asyncio.TimeoutError):
            raise
    return code, out.decode(errors="replace"), err.decode(errors="replace"), now() - started


def check(run: LargeRun, code: int | None, out: str, err: str, timeout: float) -> tuple[list[str], dict[str, Any] | None]:
    problems: list[str] = []
    if code is None:
        return [f"the CLI did not end within {timeout:.0f}s (killed)"], None
    if code != 0:
        problems.append(f"exit code {code}, expected 0")
    try:
        result = json.loads(out)
    except ValueError as error:
        problems.append(f"stdout is not exactly one JSON object ({error}; {len(out)} chars)")
        return problems, None
    if not isinstance(result, dict):
        problems.append(f"stdout is JSON but not an object ({type(result).__name__})")
        return problems, None
    if result.get("state") != "SUCCESS":
        error = result.get("error")
        problems.append(f"state {result.get('state')!r}, expected 'SUCCESS'"
                        + (f"; error: {json.dumps(error)[:600]}" if error else ""))
    task_runs = result.get("task_runs")
    count = len(task_runs) if isinstance(task_runs, list) else None
    if count != run.task_runs:
        problems.append(f"task_runs has {count} entries, expected {run.task_runs}")
    return problems, result


async def describe(address: str, run_id: str) -> str:
    """What the server knows of a run: status, history length, pending activities, failing workflow task."""
    from temporalio.client import Client

    try:
        client = await Client.connect(address)
        handle = client.get_workflow_handle(run_id)
        description = await handle.describe()
        raw = description.raw_description
        text = (f"status {description.status.name if description.status else '?'}, "
                f"{description.history_length} history events, {len(raw.pending_activities)} pending activities")
        if raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt > 1:
            text += f", workflow task attempt {raw.pending_workflow_task.attempt} (it keeps failing)"
        return text
    except Exception as error:  # noqa: BLE001 - diagnostics only
        return f"cannot describe it ({type(error).__name__}: {error})"


async def main_async(args: argparse.Namespace) -> int:
    chosen = [run for run in large_runs() if not args.only or run.key in args.only.split(",")]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="tflow-large-") as tmp, Processes() as procs:
        folder = Path(tmp)
        async with dev_server(folder, "large") as server:
            queue = f"large-{uuid.uuid4().hex[:6]}"
            worker = procs.add(WorkerProcess("interpreter", server.address, queue, folder / "worker.log"))
            await worker.start()
            log(f"worker ready (pid {worker.pid}) on {queue}")
            for run in chosen:
                path = write_flow(folder, run.flow)
                run_id = f"{run.flow['id']}-{uuid.uuid4().hex[:8]}"
                argv = [str(tflow_executable()), "run", str(path), "--address", server.address,
                        "--task-queue", queue, "--id", run_id, "--json"]
                log(f"{run.title}: {' '.join(argv[:2])} {path.name} --address {server.address} --task-queue {queue} --json")
                code, out, err, seconds = await run_cli(argv, args.timeout)
                problems, result = check(run, code, out, err, args.timeout)
                duration = result.get("duration_s") if result else None
                status = "PASS" if not problems else "FAIL"
                print(f"[{status}] {run.key}: {run.title}: CLI {seconds:.1f}s"
                      + (f", run duration_s {duration}" if duration is not None else "")
                      + f", exit code {code}, stdout {len(out):,} chars"
                      + (f", run {result.get('run_id')}" if result else ""))
                for problem in problems:
                    print(f"    - {problem}")
                if problems:
                    failed += 1
                    if err.strip():
                        print("    CLI stderr (last lines):")
                        for line in err.strip().splitlines()[-15:]:
                            print(f"      {line[:400]}")
                    if not result and out.strip():
                        print(f"    CLI stdout (first 400 chars): {out.strip()[:400]!r}")
                    print(f"    the workflow {run_id}: {await describe(server.address, run_id)}")
                if not worker.alive():
                    print(f"the worker died; its log:\n{worker.log_tail()}")
                    return 1
            if failed:
                print(f"worker log, last lines:\n{worker.log_tail(20)}")
    print(f"large-runs: {len(chosen) - failed} of {len(chosen)} passed")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description="large runs through `tflow run --json`")
    parser.add_argument("--only", default="", help="comma-separated: outputs,wide")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each CLI run may take")
    args = parser.parse_args()
    exit_on_sigterm()
    code = asyncio.run(main_async(args))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the SDK's native threads can abort interpreter finalization


if __name__ == "__main__":
    main()
