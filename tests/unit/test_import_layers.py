"""The layout's import rules (README "Layout"), checked on the source of every project module.

Layers, each importing only layers before it (or modules of its own layer without a circle):
metadata → model → expressions → tasks → language → engine → client → cli. `activities` (what runs
on workers) sits beside `tasks`: it may import metadata, model and expressions, never tasks,
language, the engine, the client or the CLI; of `activities`, the workflow side may import only the
wire contract (`activities.api`, `activities.wire`). Every import counts, including those inside
functions and under `TYPE_CHECKING`: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("temporal_flows", "activities", "client", "cli")

LAYERS: tuple[tuple[str, int], ...] = (
    ("temporal_flows.metadata", 0),
    ("temporal_flows.model", 1),
    ("temporal_flows.expressions", 2),
    ("activities", 3),
    ("temporal_flows.tasks", 3),
    ("temporal_flows.language", 4),
    ("temporal_flows.engine", 5),
    ("temporal_flows", 5),  # the package's own __init__
    ("client", 6),
    ("cli", 7),
)
WIRE_CONTRACT = ("activities.api", "activities.wire")
"""The only part of `activities` the workflow side (tasks, language, engine) may import."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


MODULES = project_modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (the longest known prefix), or None."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        candidate = ".".join(parts[:cut])
        if candidate in MODULES:
            return candidate
    return None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target and target != module:
                found.add(target)
    # `from pkg import sub` also names `pkg`; the package itself is only a dependency when nothing finer is.
    return {target for target in found if not any(other.startswith(target + ".") for other in found)}


GRAPH = {module: imports_of(module) for module in MODULES}


def layer(module: str) -> tuple[str, int]:
    for prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in GRAPH.items():
        own_prefix, own_rank = layer(module)
        for target in sorted(targets):
            target_prefix, target_rank = layer(target)
            if target_rank > own_rank:
                wrong.append(f"{module} ({own_prefix}) imports {target} ({target_prefix}, a higher layer)")
            elif target_prefix == "activities" and own_prefix.startswith("temporal_flows") and target not in WIRE_CONTRACT:
                wrong.append(f"{module} imports {target}: the workflow side may use only {', '.join(WIRE_CONTRACT)}")
            elif own_prefix == "activities" and target_prefix == "temporal_flows.tasks":
                wrong.append(f"{module} imports {target}: workers never import the task registry")
    assert not wrong, "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_circle():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted({path.parent for path in MODULES.values()}), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_package_holds_more_than_twenty_modules(package: Path):
    modules = [path for path in package.glob("*.py") if path.name != "__init__.py"]
    assert len(modules) <= 20, f"{package.relative_to(ROOT)} holds {len(modules)} modules: split it by concern"


@pytest.mark.parametrize("package", sorted({path.parent for path in MODULES.values()}), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_package_says_what_belongs_there(package: Path):
    init = package / "__init__.py"
    assert init.is_file(), f"{package.relative_to(ROOT)} has no __init__.py"
    assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} has no docstring"


def test_an_import_inside_a_function_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from client.runs import start_run\n")
    monkeypatch.setitem(MODULES, "temporal_flows.language.m", module)
    assert "client.runs" in imports_of("temporal_flows.language.m")


def test_test_modules_have_unique_names():
    """pytest imports test modules by basename (the test folders are not packages): two files of one
    name in unit/ and integration/ stop the whole collection."""
    names = [path.name for path in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []
