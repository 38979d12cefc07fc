"""A flow's `inputs`, `outputs` and `triggers` (and a pause's `onResume` inputs): lists of mappings,
each with an `id`, handed to the module that knows each kind (`inputs`, `flow_outputs`, `triggers`);
their problems are placed back at the key or value they are about."""

from __future__ import annotations

from typing import Any

from temporal_flows.language.dialects.tasklist.report import Report
from temporal_flows.language.dialects.tasklist.values import identifier
from temporal_flows.language.flow_outputs import normalize_outputs
from temporal_flows.language.input_declarations import normalize_inputs
from temporal_flows.language.source import YList, YMap
from temporal_flows.language.triggers import check_triggers
from temporal_flows.model.keys import snake_case


def declarations(report: Report, root: YMap, key: str, kind: str | None = None) -> list[dict[str, Any]]:
    """A flow's `inputs`/`outputs`/`triggers`: a list of mappings, each with an `id`; `kind`
    says which when `key` is another name for it (a pause's `onResume` declares `inputs`)."""
    kind = kind or key
    if key not in root:
        return []
    items = root[key]
    if not isinstance(items, YList):
        report.problem(root.value_location(key), f"`{key}` must be a list of mappings, each with an `id`")
        return []
    found = []
    placed: list[YMap] = []
    for item, location in zip(items, items.item_locations):
        if not isinstance(item, YMap):
            report.problem(location, f"an entry of `{key}` must be a mapping with an `id`")
            continue
        id_key = "name" if kind == "inputs" and "id" not in item and "name" in item else "id"  # Kestra's older `name`
        if identifier(report, item, id_key, f"an entry of `{key}`") is not None:
            entry = {snake_case(name): value for name, value in item.items() if name != id_key}
            found.append({"id": item[id_key], **entry})
            placed.append(item)
            report.source_map.declarations.setdefault((key, item[id_key]), item.location)
    if kind in _DECLARATION_CHECKS:
        found = _checked_entries(report, kind, found, placed)
    if key == "triggers":
        report.problems.extend(check_triggers(list(items)))
    return found


def _checked_entries(report: Report, key: str, entries: list[dict[str, Any]], placed: list[YMap]) -> list[dict[str, Any]]:
    """Flow `inputs`/`outputs` checked by their own module; each problem placed at its key or value."""
    known_task_ids = [task_id for task_id, _ in report.source_map.declared]
    normalized, problems = _DECLARATION_CHECKS[key](entries, known_task_ids)
    for found in problems:
        item = placed[found.index]
        written = next((name for name in item if snake_case(name) == found.key), None)
        if written is None:
            location = item.location
        else:
            location = item.key_location(written) if found.at_key else item.value_location(written)
        report.problem(location, found.message)
    return normalized


_DECLARATION_CHECKS = {
    "inputs": lambda entries, known_task_ids: normalize_inputs(entries),
    "outputs": normalize_outputs,
}
"""The module that checks and normalizes each kind of flow declaration: (entries, task ids) →
(normalized entries, problems)."""
