"""Dependencies run one way (STYLE.md, issue 7): cli → client → temporal_flows, activities.

Read from the source with `ast` (every import, also those inside functions), so a shortcut taken
anywhere in a module shows up here, not only at its top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "temporal_flows": ("client", "cli"),
    "activities": ("client", "cli", "temporal_flows.engine.workflow", "temporal_flows.engine.interpreter", "temporal_flows.engine.scheduler"),
    "client": ("cli",),
}
"""package → what none of its modules may import."""


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_direction(package: str):
    offending = [
        f"{path.relative_to(REPO)}:{line}: imports {module}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, module in imported_modules(path)
        if any(_is_within(module, banned) for banned in FORBIDDEN[package])
    ]
    assert not offending, "\n".join(offending)


def test_the_check_sees_imports_inside_functions(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from client.runs import start_run\n")
    assert (2, "client.runs") in imported_modules(module)
