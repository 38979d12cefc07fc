"""SECRET values never reach the page (SPEC §10): a SECRET input's default is left out of the
flow the page sees, a SECRET flow output is shown as a mask, and a run's SECRET input values (given
or defaulted) are replaced by the mask wherever they appear in its states, outputs, errors and logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from temporal_flows.language.inputs import canonical_type
from temporal_flows.model.flow import Flow

MASK = "****"
SECRET_TYPE = "SECRET"


def is_secret(declaration: Mapping[str, Any]) -> bool:
    return canonical_type(declaration.get("type")) == SECRET_TYPE


def page_inputs(declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The flow's input declarations as the page sees them: a SECRET input's `defaults` left out,
    `default_hidden: true` instead (the form sends nothing, so the server takes the default)."""
    shown = []
    for declaration in declared:
        if is_secret(declaration) and declaration.get("defaults") is not None:
            declaration = {key: value for key, value in declaration.items() if key != "defaults"}
            declaration["default_hidden"] = True
        shown.append(declaration)
    return shown


@dataclass(frozen=True)
class Masker:
    """One run's secrets: its SECRET input values and the ids of its SECRET flow outputs."""

    values: tuple[str, ...] = ()
    """Longest first, so a secret holding another is masked whole."""
    secret_outputs: frozenset[str] = frozenset()

    @classmethod
    def of_run(cls, flow: Flow, inputs: Mapping[str, Any]) -> Masker:
        """From the run's flow and the inputs it was started with (its SECRET defaults count too)."""
        values = set()
        for declaration in flow.inputs:
            if is_secret(declaration):
                for value in (inputs.get(declaration["id"]), declaration.get("defaults")):
                    if value is not None and str(value):
                        values.add(str(value))
        outputs = frozenset(output["id"] for output in flow.outputs if is_secret(output))
        return cls(tuple(sorted(values, key=len, reverse=True)), outputs)

    def run(self, result: dict[str, Any]) -> dict[str, Any]:
        """A run's SPEC §6 object as the page may see it."""
        outputs = result.get("outputs")
        if isinstance(outputs, dict) and self.secret_outputs:
            result = {**result, "outputs": {name: MASK if name in self.secret_outputs else value
                                            for name, value in outputs.items()}}
        return self.scrub(result)

    def scrub(self, value: Any) -> Any:
        """`value` with each secret replaced by the mask in every text it holds (keys too)."""
        if not self.values:
            return value
        if isinstance(value, str):
            for secret in self.values:
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {self.scrub(key): self.scrub(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub(item) for item in value]
        return value
