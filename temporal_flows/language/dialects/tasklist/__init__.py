"""Task-list flows (Kestra and the `parallel` spec): YAML mapping → `Flow`, checking every property.

`flow` holds the flow's own keys and `normalize_flow`, the entry point; `tasks` the tasks, depth
first, by property kind; `execution` retry, handlers, task runner and worker group; `declarations`
inputs, outputs and triggers; `values` the checks of one simple value; `report` the problems and
source map they all add to.
"""
