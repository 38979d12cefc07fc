"""Benchmarks and long runs against a real Temporal dev server: `make bench`, `make soak`, `make large-runs`.

Every script starts its own dev server and its workers as subprocesses, and stops them on exit.
"""
