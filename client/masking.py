"""What `tflow status` shows of a run's secrets: its SECRET input values and its `secret('NAME')`
placeholders print as `****` wherever they appear (outputs, errors, task logs).

Workers already mask the secret values they resolved and the SECRET values a request names
(`activities.secrets`); this is the reader's side, for what the workflow itself kept: a `return` or
`log` task given a SECRET input, or a placeholder a pure task kept.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle

from activities.secrets.task import MASK, TaskSecrets
from client.runs import run_input
from temporal_flows.engine.dispatch import secret_values
from temporal_flows.expressions.library import SECRET_PLACEHOLDER


class RunMasker:
    """Masks one run's SECRET input values and secret placeholders in any JSON-like value."""

    def __init__(self, secret_values: list[str]) -> None:
        self._values = TaskSecrets(secret_values)

    def mask(self, value: Any) -> Any:
        if isinstance(value, str):
            value = self._values.mask(value)
            return SECRET_PLACEHOLDER.sub(MASK, value) if "~tflow-secret~" in value else value
        if isinstance(value, list):
            return [self.mask(item) for item in value]
        if isinstance(value, dict):
            return {key: self.mask(item) for key, item in value.items()}
        return value


def run_secret_values(request: Any) -> list[str]:
    """The values of the SECRET inputs in a run's input (`RunRequest` as data)."""
    if not isinstance(request, dict) or not isinstance(request.get("flow"), dict):
        return []
    inputs = request.get("inputs")
    return list(secret_values(request["flow"].get("inputs") or [], inputs if isinstance(inputs, dict) else {}))


async def run_masker(handle: WorkflowHandle[Any, Any]) -> RunMasker:
    """The masker of the run `handle` names, from its input."""
    return RunMasker(run_secret_values(await run_input(handle)))
