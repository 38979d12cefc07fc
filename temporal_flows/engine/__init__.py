"""The engine: everything that runs inside the Temporal workflow sandbox — the workflow, the
interpreter and what it wires (group runs, attempts, activity dispatch, template rendering,
recording), the group scheduler, the ledger, pauses and worker-side renders.

Deterministic code only; may import every other package of `temporal_flows` and `activities.api`.
"""
