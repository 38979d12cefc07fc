"""Human output of runs: live progress lines while a run goes on, and the final summary table."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import typer

_STATE_COLORS = {
    "SUCCESS": typer.colors.GREEN,
    "WARNING": typer.colors.YELLOW,
    "FAILED": typer.colors.RED,
    "CANCELLED": typer.colors.MAGENTA,
    "SKIPPED": typer.colors.BRIGHT_BLACK,
    "RUNNING": typer.colors.BLUE,
    "PAUSED": typer.colors.CYAN,
}
_SYMBOLS = {"SUCCESS": "✔", "WARNING": "!", "FAILED": "✘", "CANCELLED": "⊘", "SKIPPED": "·", "RUNNING": "▶", "PAUSED": "⏸"}


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


def _children(task_runs: list[dict[str, Any]]) -> dict[str | None, list[dict[str, Any]]]:
    """Parent id (None: top level, or a parent not in the list) -> its children in creation order."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    known = {task_run["id"] for task_run in task_runs}
    for task_run in task_runs:
        parent = task_run.get("parent_id")
        children.setdefault(parent if parent in known else None, []).append(task_run)
    return children


def _tree_order(task_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Task runs depth first, each parent followed by its children in creation order."""
    children = _children(task_runs)
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


UI_UNKNOWN = "unknown (pass --ui-url or set TEMPORAL_UI_URL)"


def ui_line(link: str | None) -> str:
    """`Temporal UI: <link>`, saying so when the server's UI is not known."""
    return f"Temporal UI: {link or UI_UNKNOWN}"


def _moment(text: str | None) -> datetime:
    """An ISO-8601 instant, comparable whatever its form (`Z`, no fraction); an absent one sorts last."""
    if not text:
        return datetime.max.replace(tzinfo=timezone.utc)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _event_positions(task_runs: list[dict[str, Any]]) -> dict[tuple[str, bool], int]:
    """(task run id, is end) -> position in a depth-first walk that starts a run before its children
    and ends it after them: the order of events that share one instant (workflow time stands still
    within a workflow task, so a group and its last child often end at the same instant)."""
    positions: dict[tuple[str, bool], int] = {}
    children = _children(task_runs)

    def visit(parent: str | None) -> None:
        for task_run in children.get(parent, []):
            positions[(task_run["id"], False)] = len(positions)
            visit(task_run["id"])
            positions[(task_run["id"], True)] = len(positions)

    visit(None)
    return positions


class ProgressPrinter:
    """Prints one line when a task run starts and one when it ends, indented by nesting, in the
    order these happened (by time, then parents start before and end after their children)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}
        self._announced: set[str] = set()
        """Paused task runs whose way to resume was printed."""

    def update(self, snapshot: dict[str, Any]) -> None:
        task_runs = snapshot.get("task_runs") or []
        depths = _depths(task_runs)
        positions = _event_positions(task_runs)
        events: list[tuple[datetime, int, str]] = []
        for task_run in task_runs:
            state, previous = task_run["state"], self._seen.get(task_run["id"])
            if previous == state:
                continue
            self._seen[task_run["id"]] = state
            indent = "  " * depths.get(task_run["id"], 0)
            started = (_moment(task_run.get("started_at")), positions[(task_run["id"], False)])
            if previous is None or state == "RUNNING":
                events.append((*started, f"  {indent}{_styled_state('RUNNING')} {_label(task_run)}"))
            if state == "RUNNING":
                continue
            took = _seconds_between(task_run.get("started_at"), task_run.get("ended_at"))
            timing = f"  {took:.2f}s" if took is not None else ""
            error = task_run.get("error") or {}
            reason = f"  {error.get('message', '')}" if state in ("FAILED", "WARNING") and error else ""
            ended = (_moment(task_run.get("ended_at")), positions[(task_run["id"], True)])
            events.append((*ended, f"  {indent}{_styled_state(state)} {_label(task_run)}{timing}{reason}"))
        for _, _, line in sorted(events):
            typer.echo(line)
        fresh = [paused for paused in snapshot.get("waiting_for") or [] if paused["task_run_id"] not in self._announced]
        self._announced.update(paused["task_run_id"] for paused in fresh)
        for line in waiting_lines({"run_id": snapshot.get("run_id"), "waiting_for": fresh}):
            typer.secho(f"  {line}", fg=_STATE_COLORS["PAUSED"])


def waiting_lines(result: dict[str, Any]) -> list[str]:
    """What a paused run waits for (the summary's `waiting_for`) and how to go on."""
    lines = []
    run_id = result.get("run_id")
    for paused in result.get("waiting_for") or []:
        label = paused["task_id"] if paused.get("value") is None else f"{paused['task_id']} [{paused['value']}]"
        inputs = "".join(f" --input {name}=..." for name in paused.get("on_resume") or [])
        how = f"resume with `tflow resume {run_id} {paused['task_id']}{inputs}`"
        if paused.get("resumes_at"):
            how += f", or it resumes itself at {paused['resumes_at']}"
        if paused.get("fails_at"):
            how += f"; it fails if not resumed by {paused['fails_at']}"
        lines.append(f"Paused at task `{label}` since {paused.get('since')}: {how}")
    return lines


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
    for line in waiting_lines(result):
        typer.secho(line, fg=_STATE_COLORS["PAUSED"])
    for name, value in (result.get("outputs") or {}).items():
        shown = value if isinstance(value, str) else json.dumps(value)
        typer.echo(f"Output {name}: {shown}")
    error = result.get("error")
    if error:
        where = f" (task {error['task_id']})" if error.get("task_id") else ""
        typer.secho(f"Error{where}: {error.get('message')}", fg=typer.colors.RED)
    if "ui_url" in result:
        typer.echo(ui_line(result["ui_url"]))


_LEVEL_COLORS = {"WARN": typer.colors.YELLOW, "ERROR": typer.colors.RED, "DEBUG": typer.colors.BRIGHT_BLACK,
                 "TRACE": typer.colors.BRIGHT_BLACK}


def print_attempt_log(attempt: Any, *, header: bool = True) -> None:
    """One attempt's log (`client.task_logs.AttemptLog`) under a header naming its task run (and
    how many of its lines were shown live above, if any)."""
    lines = attempt.lines
    total = len(lines) + getattr(attempt, "shown_live", 0)
    count = f"{total} line{'s' if total != 1 else ''}" if total else "no output"
    if getattr(attempt, "shown_live", 0):
        count += f" ({attempt.shown_live} shown above)"
    if header:
        state = "running" if attempt.live else f"{attempt.state} · {count}"
        typer.secho(f"  ── {attempt.label} · attempt {attempt.attempt} · {state}", fg=typer.colors.BRIGHT_BLACK)
    for line in lines:
        clock = str(line.get("timestamp", ""))[11:23]
        level = str(line.get("level", "INFO"))
        typer.echo(f"     {clock} " + typer.style(f"{level:<5}", fg=_LEVEL_COLORS.get(level)) + f" {line.get('message', '')}")


class AttemptLogPrinter:
    """Prints logs as `follow_task_logs(live=True)` yields them: a running attempt's header once
    (again when another attempt's lines came between), then its closed log's remaining lines."""

    def __init__(self) -> None:
        self._last: tuple[str, int] | None = None

    def print(self, attempt: Any) -> None:
        key = (attempt.task_run_id, attempt.attempt)
        print_attempt_log(attempt, header=not attempt.live or key != self._last)
        self._last = key if attempt.live else None
