"""Dependency cycles among tasks or steps (`depends_on`: id → the ids it waits for), found where the
dialects still know each id's line: a task-list `dag` and a step flow report them the same way."""

from __future__ import annotations


def dependency_cycles(depends_on: dict[str, list[str]]) -> list[list[str]]:
    """Each dependency cycle once, as its members in order (depth-first search)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dependency in depends_on.get(node, []):
            if state.get(dependency) == 1:
                cycles.append(path[path.index(dependency):])
            elif dependency in depends_on and dependency not in state:
                visit(dependency)
        path.pop()
        state[node] = 2

    for node in depends_on:
        if node not in state:
            visit(node)
    return cycles
