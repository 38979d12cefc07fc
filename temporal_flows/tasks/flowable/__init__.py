"""Flowable task types: each plans a group of children that the engine's scheduler runs."""
