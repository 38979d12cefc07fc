"""`labels`: adds labels to the run while it runs, or changes existing ones (Kestra's
`io.kestra.plugin.core.execution.Labels`).

Later templates see them as `labels.<key>`; the run's memo and its `TflowLabels` search attribute
are updated from the workflow (deterministic commands in its history), so `tflow list --label k=v`,
`tflow status` and the Web UI see them too. A bad label fails the task naming it; no label is
changed then.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from temporalio import workflow

from temporal_flows.expressions.templates import as_text, is_template
from temporal_flows.metadata import label_term, labels_search_attribute_key, search_attribute_keys
from temporal_flows.model.flow import TaskKind
from temporal_flows.model.runs import State
from temporal_flows.tasks.base import PropertySpec, TaskContext, TaskType
from temporal_flows.tasks.plan import ChildResult

SYSTEM_PREFIX = "system."
"""Kestra keeps labels under `system.` for itself: a Labels task cannot set them."""

MAX_LABELS_BYTES = 2048
"""Temporal's default bound on one search attribute's value (`limit.searchAttributeValueSize`):
all of a run's labels, as `TflowLabels` holds them, must fit, or the server would refuse the
workflow's command and the run would stop making progress."""

INVALID_LABEL = "InvalidLabel"
LABELS_TOO_LARGE = "LabelsTooLarge"

EXPECTED = "a mapping of name → text, a list of `{key, value}`, or text that renders to a JSON mapping"


class LabelError(ValueError):
    """A label the task cannot set; `type` is the task's error type."""

    def __init__(self, message: str, error_type: str = INVALID_LABEL):
        super().__init__(message)
        self.type = error_type


def label_problem(key: Any, value: Any) -> str | None:
    """Why `key: value` cannot be a label, or None. Keys and values are text (numbers and booleans
    are written as text, as a flow's own labels are)."""
    return _name_problem(key) or _value_problem(str(as_text(key)), value)


def _name_problem(key: Any) -> str | None:
    if not _scalar(key) or not str(as_text(key)):
        return f"label name {_shown(key)} must be non-empty text"
    name = str(as_text(key))
    if name.startswith(SYSTEM_PREFIX):
        return f"label `{name}`: names starting with `{SYSTEM_PREFIX}` are reserved"
    if "=" in name:
        return f"label `{name}`: a name cannot hold `=` (the search attribute keeps `name=value`)"
    return None


def _value_problem(name: str, value: Any) -> str | None:
    return None if _scalar(value) else f"label `{name}` must be text, got {_shown(value)}"


def labels_problem(value: Any) -> str | None:
    """The load-time check of `labels`: its form, and each name and value not written as a template."""
    if isinstance(value, str):
        return None  # rendered, then read as a JSON mapping, when the task runs
    try:
        pairs = _pairs(value)
    except LabelError as error:
        return str(error)
    for key, item in pairs:
        name_templated = isinstance(key, str) and is_template(key)
        problem = None if name_templated else _name_problem(key)
        if problem is None and not (isinstance(item, str) and is_template(item)):
            problem = _value_problem(str(key) if name_templated else str(as_text(key)), item)
        if problem:
            return problem
    return None


async def evaluate(ctx: TaskContext) -> ChildResult:
    try:
        given = _rendered(ctx)
        merged = {**ctx.labels, **given}
        terms = [label_term(key, value) for key, value in merged.items()]
        size = len(json.dumps(terms, separators=(",", ":"), sort_keys=True).encode())
        if size > MAX_LABELS_BYTES:
            raise LabelError(f"the run's labels would take {size} bytes in the `TflowLabels` search attribute; "
                             f"Temporal holds at most {MAX_LABELS_BYTES}", LABELS_TOO_LARGE)
    except LabelError as error:
        return ChildResult(State.FAILED, {}, {"type": error.type, "message": str(error)})
    ctx.labels.update(given)  # the run's labels, as later templates see them (`labels.<key>`)
    _publish(merged, terms)
    return ChildResult(State.SUCCESS, {})


def _publish(labels: dict[str, str], terms: list[str]) -> None:
    """The run's memo and search attribute hold its labels now; a run that started without our
    search attributes (the server did not know them) keeps them in its memo only."""
    flow_id_key, _ = search_attribute_keys()
    if workflow.info().typed_search_attributes.get(flow_id_key) is not None:
        workflow.upsert_search_attributes([labels_search_attribute_key().value_set(terms)])
    workflow.upsert_memo({"labels": dict(labels)})


def _rendered(ctx: TaskContext) -> dict[str, str]:
    """The task's labels, every template rendered and each checked; LabelError names a bad one."""
    given = ctx.task.properties["labels"]
    if isinstance(given, str):
        text = ctx.render(given)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise LabelError(f"`labels` rendered {_clipped(text)!r}: expected a JSON mapping of name → text")
        pairs: Iterable[tuple[Any, Any]] = parsed.items()
    else:
        pairs = ((ctx.render(key), ctx.render(value)) for key, value in _pairs(given))
    labels: dict[str, str] = {}
    for key, value in pairs:
        problem = label_problem(key, value)
        if problem:
            raise LabelError(problem)
        labels[str(as_text(key))] = str(as_text(value))
    return labels


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    """(key, value) of a mapping or of Kestra's list of `{key, value}` (checked when the flow loads)."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        pairs = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or set(item) != {"key", "value"}:
                raise LabelError(f"entry {index + 1} must be a `{{key, value}}` mapping")
            pairs.append((item["key"], item["value"]))
        return pairs
    raise LabelError(f"expected {EXPECTED}")


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _clipped(text: Any, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


TYPE = TaskType(
    "labels",
    TaskKind.PURE,
    ("io.kestra.plugin.core.execution.Labels", "io.kestra.core.tasks.executions.Labels"),
    {"labels": PropertySpec("any", required=True, check=labels_problem, description=f"the labels to set: {EXPECTED}")},
    "adds or changes the run's labels",
    evaluate=evaluate,
)
