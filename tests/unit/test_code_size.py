"""Sizes a reader can hold in mind (README "Layout"): no module over 500 lines, no class over 250,
no function over 60, in every project package. Past them, split along the code's seams."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("temporal_flows", "activities", "client", "cli")
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60


def _sources() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def oversized(path: Path) -> list[str]:
    source = path.read_text()
    where = path.relative_to(ROOT)
    found = []
    if len(source.splitlines()) > MAX_MODULE_LINES:
        found.append(f"{where}: {len(source.splitlines())} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source, str(path))):
        length = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
        if isinstance(node, ast.ClassDef) and length > MAX_CLASS_LINES:
            found.append(f"{where}:{node.lineno} class {node.name}: {length} lines (at most {MAX_CLASS_LINES})")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and length > MAX_FUNCTION_LINES:
            found.append(f"{where}:{node.lineno} {node.name}(): {length} lines (at most {MAX_FUNCTION_LINES})")
    return found


def test_no_module_class_or_function_is_oversized():
    found = [problem for path in _sources() for problem in oversized(path)]
    assert not found, "\n".join(found)


def test_the_size_check_sees_a_long_function(tmp_path: Path):
    long_function = "def f():\n" + "    x = 1\n" * 70
    (tmp_path / "m.py").write_text(long_function)
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert oversized(tmp_path / "m.py") == ["m.py:1 f(): 71 lines (at most 60)"]
    finally:
        ROOT = saved
