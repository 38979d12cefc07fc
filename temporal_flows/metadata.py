"""Temporal-facing names and defaults gathered in one place (task queue, search attributes, timeouts)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "FlowWorkflow"
LEDGER_ACTIVITY = "tflow.ledger"
"""A no-op activity whose input is one page of a finished run's ledger: it keeps the ledger in the
run's history, where a client reads it without replaying the workflow."""
DEFAULT_TASK_QUEUE = "tflow"
DEFAULT_NAMESPACE = "default"
DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_UI_PORT = 8233

SEARCH_ATTRIBUTES: dict[str, str] = {
    "TflowFlowId": "Keyword",
    "TflowNamespace": "Keyword",
    "TflowLabels": "KeywordList",
}
"""Custom search attributes every run carries: name -> Temporal indexed value type. `TflowLabels`
holds the run's labels as `name=value` terms (`tflow list --label name=value`)."""

HEARTBEAT_TIMEOUT = timedelta(seconds=10)
"""A runnable whose worker died is re-dispatched within this (SPEC §7: at most 15 s)."""

DEFAULT_TASK_TIMEOUT = timedelta(days=365)
"""Start-to-close bound of a runnable without `timeout`; dead workers are caught by heartbeats."""

CANCEL_GRACE = timedelta(seconds=5)
"""How long a cancelled process gets between SIGTERM and SIGKILL."""

CANCEL_ACK_BOUND = CANCEL_GRACE + timedelta(seconds=3)
"""How long the workflow waits for a cancelled activity to acknowledge before it records the task
CANCELLED and moves on: the process's grace period plus a margin for the heartbeat round trip."""

HEARTBEAT_THROTTLE = timedelta(seconds=1)
"""The SDK sends a heartbeat (and so learns of a cancellation) at most this often; its default,
0.8 × the heartbeat timeout, made cancellation take 8 s to reach a running task."""

DEFAULT_MAX_PENDING_TASKS = 1000
"""Activities pending at once in one run (Temporal refuses a workflow with 2,000 pending)."""

DEFAULT_REDISPATCH_LIMIT = 10
"""A task whose worker was lost is re-dispatched at most this many times."""

PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024
"""Temporal's default limit on one payload (`limit.blobSize.error`): the flow input must fit."""

LEDGER_PAGE_BYTES = 256 * 1024
"""Upper size of one page of the ledger (query answers and the record kept in the history)."""


def search_attribute_keys() -> tuple["SearchAttributeKey[str]", "SearchAttributeKey[str]"]:
    """The typed keys for (flow id, flow namespace)."""
    from temporalio.common import SearchAttributeKey

    return SearchAttributeKey.for_keyword("TflowFlowId"), SearchAttributeKey.for_keyword("TflowNamespace")


def labels_search_attribute_key() -> "SearchAttributeKey[Sequence[str]]":
    """The typed key of a run's labels (`TflowLabels`, a KeywordList of `label_term`s)."""
    from temporalio.common import SearchAttributeKey

    return SearchAttributeKey.for_keyword_list("TflowLabels")


def label_term(name: str, value: str) -> str:
    """One label as the `TflowLabels` search attribute holds it."""
    return f"{name}={value}"
