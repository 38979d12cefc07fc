"""Runnable task types: each becomes one Temporal activity on a worker (`activity` says how)."""
