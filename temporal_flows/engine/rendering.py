"""What templates see of the run (`flow`, `execution`, `inputs`, `outputs`, `tasks`, `taskrun` ...)
and how a task's templates render: here in the workflow (within `expressions.bounds`), or on a
worker when they read stored values or run jq (`worker_render`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from temporalio import workflow

from temporal_flows.engine.recording import Recorder
from temporal_flows.engine.worker_render import render_on_worker, task_templates, templates_for_worker
from temporal_flows.expressions.library import PATCH_JQ_ON_WORKER
from temporal_flows.expressions.sandbox import PrintedAsText
from temporal_flows.expressions.templates import PATCH_PEBBLE_TEMPLATES, calls_function, render, template_strings
from temporal_flows.model.flow import Flow, Task
from temporal_flows.model.runs import TaskRun, timestamp
from temporal_flows.tasks.base import Scope, TaskContext
from temporal_flows.tasks.plan import ChildResult


class _Now(PrintedAsText):
    """`now()` in templates: the workflow's clock; printed without the call it is the same text
    (a bare function would print a fixed text)."""

    def __call__(self) -> str:
        return timestamp(workflow.now())

    __str__ = __repr__ = __call__


class Renderer:
    """The run as its templates see it; reads what the recorder kept of finished task runs."""

    def __init__(
        self, flow: Flow, run_id: str, started: datetime, recorder: Recorder, redispatch_limit: int,
        inputs: dict[str, Any], labels: dict[str, str], trigger: dict[str, Any] | None,
    ):
        self.flow = flow
        self.run_id = run_id
        self.started = started
        self.recorder = recorder
        self.redispatch_limit = redispatch_limit
        self.inputs = inputs
        """The run's resolved inputs (`inputs.<id>` in templates)."""
        self.labels = labels
        """The run's labels: the flow's, overridden by the run's own (`labels.<name>`)."""
        self.trigger = trigger
        """`trigger.*` in templates, for a run a schedule started (no `trigger` otherwise)."""
        self._jq_on_worker: bool | None = None

    def flow_context(self) -> dict[str, Any]:
        """What templates see outside any task (the flow's `outputs` render with it when the run ends)."""
        context = {
            "flow": {"id": self.flow.id, "namespace": self.flow.namespace, "description": self.flow.description},
            "execution": {
                "id": self.run_id,
                "startDate": timestamp(self.started),
                "duration": (workflow.now() - self.started).total_seconds(),
            },
            "inputs": self.inputs,
            "vars": self.flow.variables,
            "labels": self.labels,
            "outputs": self.recorder.outputs,
            "flows": self.recorder.outputs,  # step flows name earlier outputs `flows.<step>.<output>` (SPEC §3.6)
            "tasks": self.recorder.task_results,
            "now": _Now(),
        }
        if self.trigger is not None:
            context["trigger"] = self.trigger
        return context

    def template_context(self, task: Task, task_run: TaskRun, scope: Scope) -> dict[str, Any]:
        """What a task's templates see: the flow's context, plus the task, its task run and parents."""
        parents = [
            {"taskrun": {"id": parent.id, "value": parent.value}, "task": {"id": parent.task_id}}
            for parent in scope.parents
        ]
        return {
            **self.flow_context(),
            "task": {"id": task.id, "type": task.type},
            "taskrun": {
                "id": task_run.id,
                "value": scope.value,
                "iteration": scope.iteration,
                "startDate": task_run.started_at,
                "attemptsCount": task_run.attempts - 1,
            },
            "parent": parents[0] if parents else None,
            "parents": parents,
            "input": scope.input or {},
            "currentEachOutput": lambda outputs: _current_each_output(outputs, scope.values),
        }

    def render_for(
        self, task: Task, task_run: TaskRun, scope: Scope, rendered: dict[str, Any] | None = None
    ) -> Callable[..., Any]:
        """`TaskContext.render` for one task run: its context as it is at each render; templates
        in `rendered` (a worker rendered them) are taken from there."""

        def render_with(value: Any, extra: dict[str, Any] | None = None) -> Any:
            context = self.template_context(task, task_run, scope)
            pebble = workflow.patched(PATCH_PEBBLE_TEMPLATES)
            if not pebble:
                context.pop("flows", None)  # a run started before Pebble forms renders as it did
            if extra:
                return render(value, {**context, **extra}, pebble)
            return render(value, context, pebble, rendered)

        return render_with

    def jq_on_worker(self) -> bool:
        """True in runs started since `PATCH_JQ_ON_WORKER` (asked once, when a template uses jq)."""
        if self._jq_on_worker is None:
            self._jq_on_worker = workflow.patched(PATCH_JQ_ON_WORKER)
        return self._jq_on_worker

    def needs_worker(self, task: Task) -> bool:
        """Whether the task's templates may need a worker: the run holds stored values, or one of
        them runs jq or `render()` in a run that runs jq on workers."""
        if self.recorder.holds_references:
            return True
        uses = any(calls_function(template, "jq") or calls_function(template, "render") for template in task_templates(task))
        return uses and self.jq_on_worker()

    async def render_stored_values(self, context: TaskContext, rendered: dict[str, Any]) -> ChildResult | None:
        """Templates of the task only a worker can render (they read stored values or run jq),
        rendered by one into `rendered` (the task's renders use them); the task's failure if a
        reference cannot be read, a jq program runs past its time limit or a bound is exceeded."""
        task, task_run = context.task, context.task_run
        templates = templates_for_worker(task_templates(task), context.render, self.recorder.holds_references, self.jq_on_worker)
        if not templates:
            return None
        pebble = workflow.patched(PATCH_PEBBLE_TEMPLATES)
        found = await render_on_worker(
            task.id, self.run_id, task_run.id, templates, self.template_context(task, task_run, context.scope), pebble,
            self.redispatch_limit,
        )
        if isinstance(found, ChildResult):
            return found
        rendered.update(found)
        return None

    async def flow_templates_on_worker(self, value: Any) -> tuple[dict[str, Any], str | None]:
        """Templates in `value` (the flow's `outputs`) that read stored values, rendered by a worker:
        (template → rendered, None), or ({}, why a reference could not be read)."""
        context = self.flow_context()
        templates = templates_for_worker(
            template_strings(value), lambda template: render(template, context), self.recorder.holds_references, self.jq_on_worker,
        )
        if not templates:
            return {}, None
        found = await render_on_worker(
            "the flow's outputs", self.run_id, "flow-outputs", templates, context, True, self.redispatch_limit,
        )
        if isinstance(found, ChildResult):
            return {}, (found.error or {}).get("message", "cannot render")
        return found, None


def _current_each_output(outputs: Any, values: tuple[Any, ...]) -> Any:
    """Kestra's `currentEachOutput(outputs.x)`: x's outputs for the items being run now."""
    for value in values:
        if not isinstance(outputs, dict) or value not in outputs:
            break
        outputs = outputs[value]
    return outputs
