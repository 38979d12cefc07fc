"""Flow outputs (SPEC §5): `outputs: [{id, type, value}]`, checked with the flow and rendered
when the run ends (after `finally`) into the result's `outputs`.

Rendering runs inside the workflow: pure templates and `inputs.coerce`, nothing else.
"""

from __future__ import annotations

from typing import Any

from temporal_flows.expressions.templates import ExpressionError, analyze, render, template_strings
from temporal_flows.language.inputs import INPUT_TYPE_ALIASES, INPUT_TYPES, canonical_type, coerce
from temporal_flows.model.keys import camel_case
from temporal_flows.model.problems import EntryProblem, did_you_mean

OUTPUT_KEYS = ("id", "type", "value", "description", "display_name", "required")
REQUIRED_OUTPUT_KEYS = ("type", "value")


class OutputError(Exception):
    """A flow output that could not be rendered or does not fit its type: it fails the run."""

    def __init__(self, output_id: str, reason: str):
        self.output_id = output_id
        super().__init__(f"output `{output_id}`: {reason}")


def normalize_outputs(entries: list[dict[str, Any]], known_task_ids: list[str]) -> tuple[list[dict[str, Any]], list[EntryProblem]]:
    """Check a flow's output declarations (snake_case keys): known keys, `type` and `value` given,
    the type known, and the templates of `value` valid and naming only tasks of the flow."""
    normalized: list[dict[str, Any]] = []
    problems: list[EntryProblem] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        name = f"output `{entry.get('id')}`"
        if entry.get("id") in seen:
            problems.append(EntryProblem(index, "id", f"duplicate output id `{entry.get('id')}`"))
        seen.add(entry.get("id"))
        for key in entry:
            if key not in OUTPUT_KEYS:
                hint = did_you_mean(camel_case(key), [camel_case(known) for known in OUTPUT_KEYS])
                problems.append(EntryProblem(index, key, f"{name}: unknown property `{camel_case(key)}`{hint}", at_key=True))
        for key in REQUIRED_OUTPUT_KEYS:
            if key not in entry:
                problems.append(EntryProblem(index, None, f"{name} is missing `{key}`"))
        declaration = dict(entry)
        if "type" in entry:
            type_name = canonical_type(entry["type"])
            if type_name is None:
                hint = did_you_mean(str(entry["type"]).upper(), [*INPUT_TYPES, *INPUT_TYPE_ALIASES])
                problems.append(EntryProblem(index, "type", f"{name}: unknown type `{entry['type']}`{hint} (expected one of {', '.join(INPUT_TYPES)})"))
            else:
                declaration["type"] = type_name
        for message in _template_problems(entry.get("value"), known_task_ids):
            problems.append(EntryProblem(index, "value", f"{name}, `value`: {message}"))
        normalized.append(declaration)
    return normalized, problems


def _template_problems(value: Any, known_task_ids: list[str]) -> list[str]:
    found = []
    for template in template_strings(value):
        try:
            referenced, _ = analyze(template)
        except ExpressionError as error:
            found.append(str(error))
            continue
        for task_id in sorted(referenced - set(known_task_ids)):
            found.append(f"unknown task `{task_id}` in `{template.strip()}`{did_you_mean(task_id, known_task_ids)}")
    return found


def render_outputs(
    declared: list[dict[str, Any]], context: dict[str, Any], known: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Each output's `value` rendered with the run's context and coerced to its `type`; raise
    `OutputError` for the first that cannot be. `known`: templates a worker rendered (stored values)."""
    outputs: dict[str, Any] = {}
    for declaration in declared:
        output_id = declaration["id"]
        try:
            rendered = render(declaration.get("value"), context, known=known)
        except ExpressionError as error:
            raise OutputError(output_id, str(error)) from None
        try:
            outputs[output_id] = coerce(declaration.get("type") or "STRING", rendered)
        except ValueError as error:
            shown = repr(rendered) if len(repr(rendered)) <= 80 else repr(rendered)[:77] + "..."
            raise OutputError(output_id, f"rendered {shown}, expected {error} (its type is {declaration.get('type')})") from None
    return outputs
