from __future__ import annotations

from cli.progress import _tree_order


def test_result_table_groups_children_under_their_parent():
    runs = [
        {"id": "p", "parent_id": None}, {"id": "s1", "parent_id": "p"}, {"id": "s2", "parent_id": "p"},
        {"id": "a", "parent_id": "s1"}, {"id": "b", "parent_id": "s2"}, {"id": "c", "parent_id": "s1"},
        {"id": "last", "parent_id": None},
    ]
    assert [run["id"] for run in _tree_order(runs)] == ["p", "s1", "a", "c", "s2", "b", "last"]
