"""What runs on workers: one module per kind of runnable task.

This package never imports the interpreter workflow; the workflow refers to activities by the
names and request/result dataclasses in :mod:`activities.api`.
"""
