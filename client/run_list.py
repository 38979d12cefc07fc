"""Recent runs of flows, from Temporal's visibility (the search attributes every run carries):
what `tflow list` prints and `tflow webui` lists."""

from __future__ import annotations

from typing import Any, Optional

from temporalio.client import Client

from temporal_flows.metadata import WORKFLOW_TYPE, label_term, labels_search_attribute_key, search_attribute_keys


async def recent_runs(client: Client, limit: int, flow_id: Optional[str] = None,
                      labels: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """At most `limit` runs, newest first, of one flow id and with all `labels` when given:
    `{run_id, flow, status, started_at, ended_at, labels}` each."""
    flow_key, namespace_key = search_attribute_keys()
    labels_key = labels_search_attribute_key()
    query = f"WorkflowType = '{WORKFLOW_TYPE}'"
    if flow_id:
        query += f" AND {flow_key.name} = {_quoted(flow_id)}"
    for key, value in (labels or {}).items():
        query += f" AND {labels_key.name} = {_quoted(label_term(key, value))}"
    rows = []
    async for execution in client.list_workflows(query, limit=limit):
        attributes = execution.typed_search_attributes
        flow = f"{attributes.get(namespace_key) or '?'}.{attributes.get(flow_key) or '?'}"
        terms = [term.partition("=") for term in attributes.get(labels_key) or []]
        rows.append({
            "run_id": execution.id,
            "flow": flow,
            "status": execution.status.name if execution.status else "UNKNOWN",
            "started_at": execution.start_time.isoformat(),
            "ended_at": execution.close_time.isoformat() if execution.close_time else None,
            "labels": {key: value for key, _, value in terms},
        })
    return rows


def _quoted(text: str) -> str:
    """A string literal of Temporal's list filter."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
