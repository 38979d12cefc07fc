"""Task-list flows (Kestra and the `parallel` spec): YAML mapping → `Flow`, checking every property.

`flow.normalize_flow` is the entry point; the other modules each check one part of the source.
"""
