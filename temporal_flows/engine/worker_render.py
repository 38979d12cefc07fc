"""Templates only a worker can render, rendered by one for the workflow: those that read stored
values (the workflow cannot read storage and must not hold big values) and, in runs started since
`PATCH_JQ_ON_WORKER`, those that run jq (a jq program has no bound the workflow could count; the
worker runs it in a process it kills past a time limit). The `tflow.render` activity (`activities.render`).

Only runs whose outputs hold references, or tasks whose templates run jq or `render()`, take this
path (decided from what the run recorded and the templates' text, so replays decide the same);
other runs render exactly as before.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from activities.api import RENDER_ACTIVITY, RenderRequest
from jinja2 import nodes

from temporal_flows.expressions.references import context_for_worker, describe, is_reference
from temporal_flows.expressions.sandbox import undeclared_names
from temporal_flows.expressions.templates import (
    OUTPUT_ROOTS, ExpressionError, WorkerNeeded, calls_function, environment, normalize, template_strings,
)
from temporal_flows.model.flow import Task
from temporal_flows.model.runs import State
from temporal_flows.tasks import task_type
from temporal_flows.tasks.payloads import REQUEST_LIMIT_BYTES, REQUEST_TOO_LARGE_ERROR, PayloadTooLarge, check_size
from temporal_flows.tasks.plan import ChildResult
from temporal_flows.tasks.runnable.activity import redispatch_policy

RENDER_TIMEOUT = timedelta(minutes=5)
RENDER_ADVICE = "read fewer values in one task, or keep big values stored (outputs of runnable tasks) and read them by name"
PASSED_AS_FILES = ("input_files",)
"""Properties whose values may stay references: the activity copies them from storage."""


def task_templates(task: Task) -> list[str]:
    """The templates a task renders with its own context when it starts: its properties (not those
    it renders later, a loop's `condition`: rendered ahead they would be stale) and `runIf`."""
    specs = task_type(task.type).properties
    starting = {name: value for name, value in task.properties.items() if not (name in specs and specs[name].late)}
    return template_strings(starting) + ([task.run_if] if isinstance(task.run_if, str) else [])


def templates_for_worker(
    candidates: list[str], render: Callable[[Any], Any], holds_references: bool, jq_on_worker: Callable[[], bool]
) -> list[str]:
    """The templates among `candidates` only a worker can render: those using jq (when
    `jq_on_worker()`, asked only if one does), and those that read a reference or run jq when
    rendered here (tried only where they can: the run holds references, or a template calls `render()`)."""
    unique = list(dict.fromkeys(candidates))
    using_jq = [template for template in unique if calls_function(template, "jq")]
    if using_jq and not jq_on_worker():
        using_jq = []
    tried = [template for template in unique if template not in using_jq]
    if not holds_references:
        tried = [template for template in tried if calls_function(template, "render") and jq_on_worker()]
    return using_jq + templates_needing_worker(tried, render)


def templates_needing_worker(candidates: list[str], render: Callable[[Any], Any]) -> list[str]:
    """The templates among `candidates` that read a reference or run jq when rendered here."""
    needing = []
    for template in dict.fromkeys(candidates):
        try:
            render(template)
        except WorkerNeeded:
            needing.append(template)
        except ExpressionError:
            pass  # fails again, with its message, when the task renders it
    return needing


async def render_on_worker(
    label: str, run_id: str, task_run_id: str, templates: list[str], context: dict[str, Any], pebble: bool,
    redispatch_limit: int,
) -> dict[str, Any] | ChildResult:
    """`{template: rendered}` from a worker, or the failure (an unreadable reference names its file);
    `label` names what renders (a task id, the flow's outputs) in the activity's summary."""
    shipped = context_for_worker(context_needed(templates, context), str(context["now"]))
    request = RenderRequest(run_id, task_run_id, templates, shipped, pebble, root_run_id=root_run_id())
    try:
        check_size(asdict(request), f"the request rendering templates of {label} (with the values they read)",
                   REQUEST_LIMIT_BYTES, RENDER_ADVICE, REQUEST_TOO_LARGE_ERROR)
    except PayloadTooLarge as error:
        return ChildResult(State.FAILED, error=error.error)
    try:
        return await workflow.execute_activity(
            RENDER_ACTIVITY, request, result_type=dict, start_to_close_timeout=RENDER_TIMEOUT,
            retry_policy=redispatch_policy(redispatch_limit), summary=f"render {label} (stored values)",
        )
    except ActivityError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError):
            return ChildResult(State.FAILED, error={"type": cause.type or "ExpressionError", "message": cause.message})
        return ChildResult(State.FAILED, error={"type": "ExpressionError", "message": str(cause or error)})


def root_run_id() -> str:
    """The run at the top of this one's subflow calls (this run when none calls it): workers bind
    the references they store to it and read only references bound to it (`activities.storage_keys`)."""
    info = workflow.info()
    return info.root.workflow_id if info.root is not None else info.workflow_id


def context_needed(templates: list[str], context: dict[str, Any]) -> dict[str, Any]:
    """The part of `context` the templates can read, so the request stays small in a big run: the
    names they use, and of `outputs`/`tasks` only the task ids they name as constants (all of them
    when one is read another way, e.g. `outputs[name]` or `outputs | keys`)."""
    env = environment()
    used: set[str] = set()
    ids: dict[str, set[str] | None] = {}
    for template in templates:
        tree = env.parse(normalize(template))
        if any(isinstance(call.node, nodes.Name) and call.node.name == "render" for call in tree.find_all(nodes.Call)):
            return context  # `render(text)` may read anything
        used |= undeclared_names(tree)
        for root in OUTPUT_ROOTS:
            uses = sum(1 for name in tree.find_all(nodes.Name) if name.name == root)
            if not uses:
                continue
            named = [_constant_key(node) for node in tree.find_all((nodes.Getattr, nodes.Getitem))
                     if isinstance(node.node, nodes.Name) and node.node.name == root]
            known = {key for key in named if key is not None}
            target = "outputs" if root == "flows" else root  # `flows` is `outputs` (rebuilt on the worker)
            if len(named) < uses or None in named or ids.get(target, set()) is None:
                ids[target] = None
            else:
                ids[target] = (ids.get(target) or set()) | known
    if "flows" in used:
        used.add("outputs")
    needed = {name: value for name, value in context.items() if name in used}
    for root, keys in ids.items():
        if keys is not None and isinstance(needed.get(root), dict):
            needed[root] = {key: value for key, value in needed[root].items() if key in keys}
    return needed


def _constant_key(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    return node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else None


def check_no_stored_values(props: dict[str, Any]) -> None:
    """A runnable's request carries no reference but in `inputFiles`: a property that renders to a
    big value would put it in the history (and the activity expects text there)."""
    for name, value in props.items():
        if name in PASSED_AS_FILES:
            continue
        found = _first_reference(value)
        if found is not None:
            raise ExpressionError(
                f"property `{name}` renders to the stored value {describe(found)}, too big to pass to a task; "
                f"pass it as a file (inputFiles: {{name: \"{{{{ ... }}}}\"}}) instead"
            )


def _first_reference(value: Any) -> dict[str, Any] | None:
    if is_reference(value):
        return value
    items = value.values() if type(value) is dict else value if type(value) is list else ()
    for item in items:
        found = _first_reference(item)
        if found is not None:
            return found
    return None

