"""Kestra's own test flows, run through the real `tflow run --json` against the session's server.

The flows are Kestra's test data, kept read-only in ../shared/kestra-flows beside this project (an
external conformance corpus: read there, never copied here). Its `expected.yaml` lists what
Kestra's tests assert: `{file, inputs?, state?, task_runs?, attempts?: {task_id: n}, scope, note?}`.

Every `scope: core` case is one test. Each runs the flow as a separate process,
`tflow run FILE --json --address <server> --task-queue <queue>`, served by one in-process worker
for this module, and checks the final state (SPEC §6), Kestra's task-run count, the attempts of
the named tasks and, for the retry cases whose note says "N attempts", the attempts of the single
failing task. The runs go 4 at a time, once, the first time a case asks for its result.
A flow with a pause that only a resume ends is resumed with `tflow resume` once it is paused.

No case is skipped: every core case must pass (issue 7's acceptance). Run with `-s` to see one
line per case and, last, the whole table with the counts.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import pytest
import pytest_asyncio
import yaml
from temporalio.client import Client

from client.worker import create_worker
from temporal_flows.model.requests import SUMMARY_QUERY
from tests.support import REPO, cli_env, tflow

CORPUS = REPO.parent / "shared" / "kestra-flows"  # SHARED / "kestra-flows" (tests/conftest.py)
EXPECTED = CORPUS / "expected.yaml"

if not EXPECTED.is_file():
    pytest.skip(f"the Kestra flow corpus is not there ({EXPECTED} is missing)", allow_module_level=True)

CONCURRENT_RUNS = 4
RUN_TIMEOUT_S = 45.0
"""A run that has not ended by then is killed (its workflow terminated) and its case fails."""

pytestmark = pytest.mark.timeout(600)  # the first case to ask waits for every run


# -- the cases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    file: str
    inputs: dict[str, Any]
    has_inputs: bool
    """The case gives `inputs` (even `{}`)."""
    state: Optional[str]
    task_runs: Optional[int]
    attempts: dict[str, int]
    note: str

    @property
    def id(self) -> str:
        given = ",".join(f"{key}={value}" for key, value in self.inputs.items())
        return f"{self.file}-{given}" if given else self.file

    @property
    def path(self) -> Path:
        return CORPUS / self.file

    @property
    def noted_attempts(self) -> Optional[int]:
        """The N of a note saying "N attempts" (the retry cases without an `attempts` map)."""
        match = re.search(r"\b(\d+) attempts\b", self.note)
        return int(match.group(1)) if match else None

    def expected(self) -> str:
        parts = [self.state or "any state"]
        if self.task_runs is not None:
            parts.append(f"{self.task_runs} task runs")
        if self.attempts:
            parts.append("attempts " + ", ".join(f"{task}={n}" for task, n in self.attempts.items()))
        if self.noted_attempts is not None:
            parts.append(f"failing task {self.noted_attempts} attempts")
        return ", ".join(parts)


def core_cases() -> list[Case]:
    entries = yaml.safe_load(EXPECTED.read_text()) or []
    cases = [
        Case(
            file=entry["file"],
            inputs=dict(entry.get("inputs") or {}),
            has_inputs="inputs" in entry,
            state=entry.get("state"),
            task_runs=entry.get("task_runs"),
            attempts=dict(entry.get("attempts") or {}),
            note=str(entry.get("note") or ""),
        )
        for entry in entries
        if entry.get("scope") == "core"
    ]
    ids = [case.id for case in cases]
    assert len(ids) == len(set(ids)), f"two core cases share an id: {sorted(ids)}"
    return cases


CASES = core_cases()


# -- reading a case's flow file -----------------------------------------------------------------

def read_flow(case: Case) -> Any:
    """The flow file as plain data (None when it does not parse: then it runs, and fails there)."""
    try:
        return yaml.safe_load(case.path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# -- cases a user steers while they run -----------------------------------------------------------

PAUSE_TYPES = ("pause", "io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause")
PAUSE_ENDS = ("delay", "pauseDuration", "pause_duration", "timeout")


def waits_for_resume(case: Case) -> bool:
    """The flow has a pause that only a resume ends (no duration, no timeout): Kestra's test resumes
    it, so the case resumes it with `tflow resume` once it is paused."""
    return any(
        isinstance(node, dict) and node.get("type") in PAUSE_TYPES and not any(key in node for key in PAUSE_ENDS)
        for node in _walk(read_flow(case))
    )


async def resume_when_paused(client: Client, run_id: str, address: str, task_queue: str) -> None:
    """Poll the run's summary until something waits for a resume, then `tflow resume RUN_ID` as a
    separate process, as a user would (the run's own outcome is what the case checks)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            current = await client.get_workflow_handle(run_id).query(SUMMARY_QUERY)
        except Exception:  # noqa: BLE001 - not started yet, or no worker has answered yet
            current = {}
        if current.get("waiting_for"):
            break
        await asyncio.sleep(0.2)
    else:
        return
    proc = await asyncio.create_subprocess_exec(
        *tflow("resume", run_id, "--address", address, "--task-queue", task_queue),
        cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, f"tflow resume {run_id}: exit {proc.returncode}\n{stdout.decode()}{stderr.decode()}"


# -- running the cases ---------------------------------------------------------------------------

@dataclass
class Outcome:
    exit_code: Optional[int]
    stdout: str
    stderr: str
    seconds: float
    run_id: str
    result: Optional[dict[str, Any]] = None
    timed_out: bool = False

    def __post_init__(self) -> None:
        try:
            parsed = json.loads(self.stdout)
        except json.JSONDecodeError:
            return
        self.result = parsed if isinstance(parsed, dict) else None

    def reason(self) -> str:
        """Why there is no result: the timeout, or the command's own first line of complaint."""
        if self.timed_out:
            return f"no result within {RUN_TIMEOUT_S:.0f}s (killed; run {self.run_id} terminated)"
        lines = (self.stderr + "\n" + self.stdout).splitlines()
        tracebacks = [at for at, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        if tracebacks:  # the exception's own line: the first unindented one after the frames
            lines = [line for line in lines[tracebacks[-1] + 1 :] if line.strip() and not line[0].isspace()]
        lines = [line.strip() for line in lines if line.strip()]
        return f"exit {self.exit_code}, no JSON result: " + (lines[0] if lines else "no output")

    def got(self) -> str:
        if self.result is None:
            return self.reason()
        runs = self.result.get("task_runs") or []
        attempts = ", ".join(f"{run['task_id']}={run.get('attempts')}" for run in runs if run.get("attempts", 1) != 1)
        text = f"{self.result.get('state')}, {len(runs)} task runs"
        if attempts:
            text += f", attempts {attempts}"
        error = self.result.get("error")
        if isinstance(error, dict) and error.get("message"):
            text += f" [error: {str(error['message']).splitlines()[0][:100]}]"
        return text


async def run_case(case: Case, address: str, task_queue: str, client: Client) -> Outcome:
    run_id = f"kestra-corpus-{Path(case.file).stem}-{uuid.uuid4().hex[:8]}"
    inputs = [arg for key, value in case.inputs.items() for arg in ("--input", f"{key}={value}")]
    command = tflow(
        "run", str(case.path), "--json", "--address", address, "--task-queue", task_queue, "--id", run_id, *inputs
    )
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    resumer = asyncio.ensure_future(resume_when_paused(client, run_id, address, task_queue)) if waits_for_resume(case) else None
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=RUN_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        stdout, stderr = await proc.communicate()
        try:
            await client.get_workflow_handle(run_id).terminate(reason="kestra corpus test: run timed out")
        except Exception:  # noqa: BLE001 - it may never have started, or have ended meanwhile
            pass
        return Outcome(None, stdout.decode(), stderr.decode(), time.monotonic() - started, run_id, timed_out=True)
    finally:
        if resumer is not None and not resumer.done():
            resumer.cancel()
    if resumer is not None:
        [resumed] = await asyncio.gather(resumer, return_exceptions=True)
        if isinstance(resumed, Exception):
            stderr += f"\n{resumed}".encode()
    return Outcome(proc.returncode, stdout.decode(), stderr.decode(), time.monotonic() - started, run_id)


class CorpusRuns:
    """Runs every selected case that is not skipped, CONCURRENT_RUNS at a time, once; then answers
    from the cache."""

    def __init__(self, client: Client, address: str, task_queue: str, selected: set[str]):
        self.client, self.address, self.task_queue, self.selected = client, address, task_queue, selected
        self.outcomes: dict[str, Outcome] = {}
        self.seconds = 0.0
        self._all: Optional[asyncio.Task[None]] = None

    async def outcome(self, case: Case) -> Outcome:
        if self._all is None:
            self._all = asyncio.ensure_future(self._run_all())
        await asyncio.shield(self._all)
        return self.outcomes[case.id]

    async def _run_all(self) -> None:
        began = time.monotonic()
        slots = asyncio.Semaphore(CONCURRENT_RUNS)

        async def one(case: Case) -> None:
            async with slots:
                self.outcomes[case.id] = await run_case(case, self.address, self.task_queue, self.client)

        await asyncio.gather(*(one(case) for case in CASES if case.id in self.selected))
        self.seconds = time.monotonic() - began
        print(f"\n[kestra] {len(self.outcomes)} runs, {CONCURRENT_RUNS} at a time, took {self.seconds:.1f}s")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def corpus_runs(client: Client, temporal_address: str, request: pytest.FixtureRequest) -> AsyncIterator[CorpusRuns]:
    """One in-process worker on a queue of this module's own, and the cache of the runs it serves
    (only the cases this session runs: `-k` selects cases without running the others)."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_core_case" and Path(str(item.fspath)) == Path(__file__)
    }
    task_queue = f"test-kestra-{uuid.uuid4().hex[:10]}"
    async with create_worker(client, task_queue, graceful_shutdown_s=5):
        yield CorpusRuns(client, temporal_address, task_queue, selected)


# -- the table -----------------------------------------------------------------------------------

@dataclass
class Row:
    case: Case
    got: str = "not run in this session"
    outcome: str = "not run"


TABLE: dict[str, Row] = {case.id: Row(case) for case in CASES}


def show(row: Row, lead: str = "\n") -> None:
    verdict = "fail" if row.outcome == f"fail: {row.got}" else row.outcome
    print(f"{lead}[kestra] {row.case.id:<50} expected {row.case.expected():<40} got {row.got}  => {verdict}")


# -- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_core_case(case: Case, corpus_runs: CorpusRuns):
    row = TABLE[case.id]
    outcome = await corpus_runs.outcome(case)
    row.got, row.outcome = outcome.got(), "fail"
    try:
        check(case, outcome)
    except AssertionError as error:
        row.outcome = "fail: " + (str(error).splitlines() or ["assertion failed"])[0]
        raise
    else:
        row.outcome = "pass"
    finally:
        show(row)


def check(case: Case, outcome: Outcome) -> None:
    result = outcome.result
    if result is None:
        raise AssertionError(f"{outcome.reason()}\n--- stderr ---\n{outcome.stderr}\n--- stdout ---\n{outcome.stdout}")
    runs: list[dict[str, Any]] = result.get("task_runs") or []
    ledger = "\n".join(
        f"  {run['task_id']} (value {run.get('value')!r}): {run['state']}, {run.get('attempts')} attempts" for run in runs
    )
    if case.state is not None:
        assert result.get("state") == case.state, (
            f"state {result.get('state')}, expected {case.state}; error: {result.get('error')}\n{ledger}"
        )
    expected_exit = 0 if result.get("state") in ("SUCCESS", "WARNING") else 1
    assert outcome.exit_code == expected_exit, f"exit {outcome.exit_code} for a {result.get('state')} run (SPEC §6)"
    if case.task_runs is not None:
        assert len(runs) == case.task_runs, f"{len(runs)} task runs, expected {case.task_runs}\n{ledger}"
    for task_id, attempts in case.attempts.items():
        of_task = [run for run in runs if run["task_id"] == task_id]
        assert of_task, f"no task run of `{task_id}`\n{ledger}"
        assert all(run.get("attempts") == attempts for run in of_task), (
            f"`{task_id}` has {[run.get('attempts') for run in of_task]} attempts, expected {attempts}\n{ledger}"
        )
    if case.noted_attempts is not None:
        parents = {run.get("parent_id") for run in runs}
        failing = [run for run in runs if run["state"] == "FAILED" and run["id"] not in parents]
        assert len(failing) == 1, f"expected one failing task run, got {[run['task_id'] for run in failing]}\n{ledger}"
        assert failing[0].get("attempts") == case.noted_attempts, (
            f"`{failing[0]['task_id']}` has {failing[0].get('attempts')} attempts, expected {case.noted_attempts} "
            f"({case.note})\n{ledger}"
        )


def test_corpus_summary():
    """Last: the whole table, and how many core cases ran, passed and failed."""
    rows = list(TABLE.values())
    print(f"\n\n[kestra] core cases of {EXPECTED} ({len(rows)}):")
    for row in rows:
        show(row, lead="")
    passed = sum(row.outcome == "pass" for row in rows)
    failed = sum(row.outcome.startswith("fail") for row in rows)
    not_run = len(rows) - passed - failed
    print(f"\n[kestra] ran {passed + failed}: {passed} passed, {failed} failed"
          + (f"; {not_run} not run in this session" if not_run else ""))
    assert CASES, f"no core case in {EXPECTED}"
