"""Pure task types: each computes its result inside the workflow, without an activity."""
