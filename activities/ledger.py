"""`tflow.ledger`: keeps a finished run's ledger in its history (see `FlowWorkflow`).

Its work is done when Temporal records its input; running it does nothing else.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from temporal_flows.metadata import LEDGER_ACTIVITY


@activity.defn(name=LEDGER_ACTIVITY)
async def record_ledger_page(page: dict[str, Any]) -> None:
    """The page is already in the history as this activity's input."""
