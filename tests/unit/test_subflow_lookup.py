"""Finding subflows before a run starts (`client/subflows.py`): recursively in the flow
directories, a child's own subflows too; missing, duplicated, invalid, templated and cyclic
references are problems of the calling file and line; other files are skipped quietly."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.subflows import resolve_subflows
from temporal_flows.language.loader import load_flow
from temporal_flows.model.problems import FlowError
from tests.support import write_flow


def caller(flow_id: str, *calls: str, namespace: str = "t") -> str:
    tasks = "".join(
        f"  - id: call-{index}\n    type: subflow\n    namespace: {call.rsplit('.', 1)[0]}\n    flowId: {call.rsplit('.', 1)[1]}\n"
        for index, call in enumerate(calls)
    )
    tasks = tasks or "  - id: only\n    type: return\n    format: x\n"
    return f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{tasks}"


def problems(path: Path, dirs: list[Path] | None = None) -> list[str]:
    with pytest.raises(FlowError) as raised:
        resolve_subflows(load_flow(path), dirs)
    return [str(problem) for problem in raised.value.problems]


def test_a_flow_without_subflows_reads_no_directory(tmp_path: Path):
    parent = write_flow(tmp_path, caller("alone"))
    assert resolve_subflows(load_flow(parent), [tmp_path / "does-not-exist"]) == {}


def test_children_and_grandchildren_are_found_recursively(tmp_path: Path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    write_flow(tmp_path / "deep", caller("b", "t.c"), "b.yml")
    write_flow(tmp_path / "deep" / "er", caller("c"), "c.yaml")
    write_flow(tmp_path, "id: [broken", "broken.yaml")
    write_flow(tmp_path, "just: text", "notes.yaml")
    parent = write_flow(tmp_path, caller("a", "t.b", "t.c"), "a.yaml")
    found = resolve_subflows(load_flow(parent))
    assert sorted(found) == ["t.b", "t.c"]
    assert found["t.b"]["id"] == "b" and found["t.b"]["tasks"][0]["type"] == "subflow"


def test_a_missing_subflow_names_the_file_line_and_where_it_looked(tmp_path: Path):
    parent = write_flow(tmp_path, caller("a", "t.nowhere"), "a.yaml")
    [problem] = problems(parent, [tmp_path / "lib"])
    assert problem.startswith(f"{parent}:7:")
    assert "`t.nowhere` not found" in problem and str(tmp_path / "lib") in problem


def test_cycles_are_refused(tmp_path: Path):
    write_flow(tmp_path, caller("b", "t.a"), "b.yaml")
    parent = write_flow(tmp_path, caller("a", "t.b"), "a.yaml")
    [problem] = problems(parent)
    assert problem.startswith(f"{tmp_path / 'b.yaml'}:7:") and "cycle: `t.a` → `t.b` → `t.a`" in problem
    itself = write_flow(tmp_path, caller("self", "t.self"), "self.yaml")
    assert "cycle: `t.self` → `t.self`" in problems(itself)[0]


def test_duplicates_invalid_children_and_templates_are_problems(tmp_path: Path):
    write_flow(tmp_path, caller("twice"), "one.yaml")
    write_flow(tmp_path, caller("twice"), "two.yaml")
    write_flow(tmp_path, "id: bad\nnamespace: t\ntasks:\n  - id: x\n    type: nope\n", "bad.yaml")
    parent = write_flow(tmp_path, caller("a", "t.twice", "t.bad"), "a.yaml")
    found = problems(parent)
    assert any("`t.twice` is defined by several files" in problem for problem in found)
    assert any("`t.bad`" in problem and "not a valid flow" in problem for problem in found)
    assert any(problem.startswith(f"{tmp_path / 'bad.yaml'}:5:") and "unknown task type `nope`" in problem for problem in found)

    templated = write_flow(tmp_path, caller("tpl").replace("tasks:\n  - id: only\n    type: return\n    format: x\n", (
        "tasks:\n  - id: call\n    type: subflow\n    namespace: t\n    flowId: \"{{ flow.id }}\"\n")), "tpl.yaml")
    [problem] = problems(templated)
    assert "`flowId` must be written literally" in problem
