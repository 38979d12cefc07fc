"""The engine: everything that runs inside the Temporal workflow sandbox — the workflow, the
interpreter, the group scheduler, the ledger, pauses and worker-side renders.

Deterministic code only; may import every other package of `temporal_flows` and `activities.api`.
"""
