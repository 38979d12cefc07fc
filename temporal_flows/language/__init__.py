"""The flow language: YAML with positions → dialects → the typed model, validation, inputs,
outputs, triggers and cron, the JSON Schema, and the resolved graph.

Used by the CLI, the client and the engine; imports `model`, `expressions` and `tasks`, never the engine.
"""
