"""The typed flow and the records of its runs: pure data every other layer shares.

Imports nothing of the project but `temporal_flows.metadata`; no I/O, no Temporal, no templates.
"""
