"""Temporal-facing names and defaults gathered in one place (task queue, search attributes, timeouts)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "FlowWorkflow"
DEFAULT_TASK_QUEUE = "tflow"
DEFAULT_NAMESPACE = "default"
DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_UI_PORT = 8233

SEARCH_ATTRIBUTES: dict[str, str] = {
    "TflowFlowId": "Keyword",
    "TflowNamespace": "Keyword",
}
"""Custom search attributes every run carries: name -> Temporal indexed value type."""

HEARTBEAT_TIMEOUT = timedelta(seconds=10)
"""A runnable whose worker died is re-dispatched within this (SPEC §7: at most 15 s)."""

DEFAULT_TASK_TIMEOUT = timedelta(days=365)
"""Start-to-close bound of a runnable without `timeout`; dead workers are caught by heartbeats."""

CANCEL_GRACE = timedelta(seconds=5)
"""How long a cancelled process gets between SIGTERM and SIGKILL."""


def search_attribute_keys() -> tuple["SearchAttributeKey[str]", "SearchAttributeKey[str]"]:
    """The typed keys for (flow id, flow namespace)."""
    from temporalio.common import SearchAttributeKey

    return SearchAttributeKey.for_keyword("TflowFlowId"), SearchAttributeKey.for_keyword("TflowNamespace")
