"""Flow inputs (SPEC §5): the declared types, checking declarations, and resolving given values.

Resolving is pure and deterministic (no I/O, no clock), because it runs in two places: on the
client before a run starts (`tflow run --input`, schedules) and inside the workflow for a subflow's
inputs.
"""

from __future__ import annotations

INPUT_TYPES: tuple[str, ...] = (
    "STRING", "INT", "FLOAT", "BOOLEAN", "SELECT", "MULTISELECT", "ARRAY", "JSON", "YAML", "DATETIME",
    "DATE", "TIME", "DURATION", "URI", "EMAIL", "SECRET",
)
"""Canonical input types, as a flow's `inputs[].type` names them."""

INPUT_TYPE_ALIASES: dict[str, str] = {"BOOL": "BOOLEAN", "ENUM": "SELECT"}
"""Other names Kestra accepts for the same types."""
