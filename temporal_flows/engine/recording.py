"""What finished task runs leave behind: closed in the ledger, their outputs and results visible
to later templates (`outputs.<id>`, `tasks.<id>`), and whether any output is a stored value's
reference (then templates are checked for reading one)."""

from __future__ import annotations

from typing import Any

from temporal_flows.engine.ledger import Ledger
from temporal_flows.expressions.references import contains_reference
from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.model.runs import State, TaskRun
from temporal_flows.tasks import TaskType
from temporal_flows.tasks.base import Scope
from temporal_flows.tasks.payloads import bounded_error
from temporal_flows.tasks.plan import ChildResult


class Recorder:
    """The run's task runs and what templates read of them; the only writer of both."""

    def __init__(self, ledger: Ledger, holds_references: bool):
        self.ledger = ledger
        self.outputs: dict[str, Any] = {}
        """task id → its outputs; inside for-each, nested by item value (`outputs.<id>[<value>]`)."""
        self.task_results: dict[str, dict[str, Any]] = {}
        """task id → its last result (`tasks.<id>.output`, `.state`, `.error`, `.winner`)."""
        self.holds_references = holds_references
        """Some recorded output (or input) is a stored value's reference."""
        self._metrics: dict[str, list[dict[str, Any]]] = {}
        """task run id → metrics its activity reported, until the task run closes."""

    def open(self, task: Task, scope: Scope) -> TaskRun:
        """A RUNNING task run for `task` in `scope`, under its nearest enclosing task run."""
        parent = scope.parents[0] if scope.parents else None
        return self.ledger.open(task.id, task.type, parent, scope.value, scope.iteration)

    def keep_metrics(self, task_run: TaskRun, metrics: list[dict[str, Any]]) -> None:
        """Metrics an attempt's activity reported, recorded when the task run closes."""
        self._metrics[task_run.id] = metrics

    def record(
        self, declared: TaskType, task_run: TaskRun, scope: Scope, result: ChildResult, own: dict[str, Any] | None
    ) -> None:
        """Close the task run and make its outputs visible to later templates.

        A flowable's output (its group's map) is only `tasks.<id>.output`; its Kestra outputs are
        what its type decided (a switch's `value`) and a race's `winner`.
        """
        task_id = task_run.task_id
        outputs = self.outputs_of(declared, result, own)
        if outputs is not None:
            self._publish(task_id, scope.values, outputs)
            self.holds_references = self.holds_references or contains_reference(outputs)
        metrics = self._metrics.pop(task_run.id, None)
        error = bounded_error(result.error)
        if error is not None and result.state is State.FAILED:
            error = {**error, "task_id": error.get("task_id") or task_id}
        self.ledger.close(task_run, result.state, outputs=outputs, error=error, metrics=metrics)
        self.task_results[task_id] = {
            "output": result.output, "state": result.state.value, "error": result.error, "winner": result.winner,
        }

    @staticmethod
    def outputs_of(declared: TaskType, result: ChildResult, own: dict[str, Any] | None) -> dict[str, Any] | None:
        """The outputs a task run records (see `record`); None when it has none."""
        if declared.kind is not TaskKind.FLOWABLE:
            return result.output if isinstance(result.output, dict) else None
        if own is not None or result.winner is not None:
            return {**(own or {}), **({"winner": result.winner} if result.winner is not None else {})}
        return None

    def _publish(self, task_id: str, values: tuple[Any, ...], outputs: dict[str, Any]) -> None:
        """`outputs.<id>`, or inside for-each `outputs.<id>[<outer value>]...[<value>]`."""
        if not values:
            self.outputs[task_id] = outputs
            return
        node = self.outputs.setdefault(task_id, {})
        for value in values[:-1]:
            node = node.setdefault(value, {})
        node[values[-1]] = outputs
