"""Flow triggers (SPEC §5): every command accepts them; `tflow deploy` turns Schedule triggers into
Temporal Schedules; `tflow run` ignores them."""

from __future__ import annotations

SCHEDULE_TRIGGER = "io.kestra.plugin.core.trigger.Schedule"
"""The trigger type that maps to a Temporal Schedule."""
