"""Human output of runs: live progress lines while a run goes on, and the final summary table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

_STATE_COLORS = {
    "SUCCESS": typer.colors.GREEN,
    "WARNING": typer.colors.YELLOW,
    "FAILED": typer.colors.RED,
    "CANCELLED": typer.colors.MAGENTA,
    "SKIPPED": typer.colors.BRIGHT_BLACK,
    "RUNNING": typer.colors.BLUE,
}
_SYMBOLS = {"SUCCESS": "✔", "WARNING": "!", "FAILED": "✘", "CANCELLED": "⊘", "SKIPPED": "·", "RUNNING": "▶"}


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _depths(task_runs: list[dict[str, Any]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for task_run in task_runs:  # creation order: parents come before their children
        parent = task_run.get("parent_id")
        depth[task_run["id"]] = depth.get(parent, -1) + 1 if parent else 0
    return depth


def _tree_order(task_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Task runs depth first, each parent followed by its children in creation order."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    known = {task_run["id"] for task_run in task_runs}
    for task_run in task_runs:
        parent = task_run.get("parent_id")
        children.setdefault(parent if parent in known else None, []).append(task_run)
    ordered: list[dict[str, Any]] = []

    def visit(parent: str | None) -> None:
        for task_run in children.get(parent, []):
            ordered.append(task_run)
            visit(task_run["id"])

    visit(None)
    return ordered


def _label(task_run: dict[str, Any]) -> str:
    value = task_run.get("value")
    return task_run["task_id"] if value is None else f"{task_run['task_id']} [{value}]"


def _styled_state(state: str) -> str:
    return typer.style(f"{_SYMBOLS.get(state, ' ')} {state:<9}", fg=_STATE_COLORS.get(state))


class ProgressPrinter:
    """Prints one line when a task run starts and one when it ends, indented by nesting."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def update(self, snapshot: dict[str, Any]) -> None:
        task_runs = snapshot.get("task_runs") or []
        depths = _depths(task_runs)
        events: list[tuple[str, int, str]] = []
        for order, task_run in enumerate(task_runs):
            state, previous = task_run["state"], self._seen.get(task_run["id"])
            if previous == state:
                continue
            self._seen[task_run["id"]] = state
            indent = "  " * depths.get(task_run["id"], 0)
            if previous is None and state != "RUNNING":
                events.append((task_run.get("started_at") or "", order, f"  {indent}{_styled_state('RUNNING')} {_label(task_run)}"))
            if state == "RUNNING":
                events.append((task_run.get("started_at") or "", order, f"  {indent}{_styled_state(state)} {_label(task_run)}"))
                continue
            took = _seconds_between(task_run.get("started_at"), task_run.get("ended_at"))
            timing = f"  {took:.2f}s" if took is not None else ""
            error = task_run.get("error") or {}
            reason = f"  {error.get('message', '')}" if state in ("FAILED", "WARNING") and error else ""
            events.append((task_run.get("ended_at") or "", order, f"  {indent}{_styled_state(state)} {_label(task_run)}{timing}{reason}"))
        for _, _, line in sorted(events):
            typer.echo(line)


def print_result(result: dict[str, Any]) -> None:
    """The run's final state, its task runs as a table, its error and the UI link."""
    state = result.get("state", "?")
    flow = result.get("flow") or {}
    duration = result.get("duration_s")
    took = f" in {duration:.2f}s" if isinstance(duration, (int, float)) else ""
    typer.echo("")
    typer.echo(f"Run {result.get('run_id')} of {flow.get('namespace')}.{flow.get('id')}: " + typer.style(state, fg=_STATE_COLORS.get(state), bold=True) + took)
    task_runs = result.get("task_runs") or []
    depths = _depths(task_runs)
    for task_run in _tree_order(task_runs):
        took_s = _seconds_between(task_run.get("started_at"), task_run.get("ended_at"))
        timing = f"{took_s:7.2f}s" if took_s is not None else "        "
        name = "  " * depths.get(task_run["id"], 0) + _label(task_run)
        typer.echo(f"  {_styled_state(task_run['state'])} {timing}  {name}")
    error = result.get("error")
    if error:
        where = f" (task {error['task_id']})" if error.get("task_id") else ""
        typer.secho(f"Error{where}: {error.get('message')}", fg=typer.colors.RED)
    if result.get("ui_url"):
        typer.echo(f"Temporal UI: {result['ui_url']}")
