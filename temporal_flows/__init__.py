"""temporal-flows: the flow language and the interpreter workflow that runs it on Temporal.

Packages, each importing only those listed before it (tests/unit/test_import_layers.py checks):
`model` (the typed flow, pure data) → `expressions` (templates, extractors) → `tasks` (the registry
of task types) → `language` (reading and checking flows) → `engine` (the Temporal workflow sandbox).
`metadata` (Temporal names and defaults) is shared by all and imports nothing of the project.
"""
