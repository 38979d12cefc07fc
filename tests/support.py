"""Helpers the tests share: writing flows, running them on the session server, reading results."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from temporal_flows.language.loader import load_flow
from client.runs import start_run, wait_result

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def write_flow(folder: Path, text: str, name: str = "flow.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


async def run_flow(client: Client, path: Path, task_queue: str, **options: Any) -> dict[str, Any]:
    handle = await start_run(client, load_flow(path), task_queue=task_queue, **options)
    return await wait_result(handle)


def task_run(result: dict[str, Any], task_id: str) -> dict[str, Any]:
    matches = [run for run in result["task_runs"] if run["task_id"] == task_id]
    assert len(matches) == 1, f"expected one task run of {task_id}, got {len(matches)}"
    return matches[0]


def duration(task_run: dict[str, Any]) -> float:
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(task_run["ended_at"]) - parse(task_run["started_at"])).total_seconds()


def peak_concurrency(log: Path) -> int:
    """Most tasks running at once, from lines `start <epoch>` / `end <epoch>` the tasks wrote."""
    events = sorted((float(line.split()[1]), 1 if line.startswith("start") else -1) for line in log.read_text().splitlines())
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `tflow` subprocess: no TEMPORAL_* settings and an empty Temporal CLI
    config file (a developer's own profiles must not redirect the tests); `extra` on top."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")}
    env["TEMPORAL_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


def tflow(*args: str) -> list[str]:
    return [PYTHON, "-m", "cli.app", *args]


# -- helpers for running several flows at once and reading their ledgers and histories ----------


def fill(text: str, **tokens: Any) -> str:
    """Flow text with each `<<name>>` replaced by str(value) (YAML and templates keep their braces)."""
    for name, value in tokens.items():
        text = text.replace(f"<<{name}>>", str(value))
    return text


async def run_flows(client: Client, task_queue: str, folder: Path, flows: dict[str, str], **options: Any) -> dict[str, dict[str, Any]]:
    """Write each flow text as `<name>.yaml` in `folder`, run them all at once; results by name."""
    paths = [write_flow(folder, text, f"{name}.yaml") for name, text in flows.items()]
    results = await asyncio.gather(*(run_flow(client, path, task_queue, **options) for path in paths))
    return dict(zip(flows, results))


async def run_with_history(client: Client, path: Path, task_queue: str, **options: Any) -> tuple[dict[str, Any], list[Any]]:
    """Run a flow; its result and its Temporal history events."""
    handle = await start_run(client, load_flow(path), task_queue=task_queue, **options)
    result = await wait_result(handle)
    return result, [event async for event in handle.fetch_history_events()]


def activity_workers(events: list[Any]) -> dict[str, str]:
    """Activity summary (task id, or `render <task> ...`) → identity (`<pid>@<host>`) of the worker
    that ran it, from a run's history events."""
    summaries: dict[int, str] = {}
    found: dict[str, str] = {}
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            summaries[event.event_id] = json.loads(event.user_metadata.summary.data or b'""')
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attributes = event.activity_task_started_event_attributes
            found[summaries.get(attributes.scheduled_event_id, "?")] = attributes.identity
    return found


def runs_of(result: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    """Every task run of `task_id`, in creation order."""
    return [run for run in result["task_runs"] if run["task_id"] == task_id]


def task_ids(result: dict[str, Any]) -> list[str]:
    """The task ids of the ledger, in creation order."""
    return [run["task_id"] for run in result["task_runs"]]


def span(log: Path, seconds: float) -> str:
    """A `commands` list (as YAML flow text) that sleeps `seconds` between `start`/`end` lines in
    `log`, for `peak_concurrency`."""
    return json.dumps([f"echo start $(date +%s.%N) >> {log}", f"sleep {seconds}", f"echo end $(date +%s.%N) >> {log}"])
