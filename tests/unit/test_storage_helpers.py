"""Storage helpers without a server: what is stored and what stays inline, files in and out of a
working directory, unreadable references, references that cannot be forged (signed, bound to their
root run), and templates that meet a reference in the workflow (they raise) or on a worker (they read it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities import storage
from activities.storage import keys as storage_keys
from activities.storage import StoredValueError, TaskStorage, collect_output_files, read_value, stage_input_files, stored
from activities.storage.keys import KEY_FILE, sign
from temporal_flows.engine.worker_render import check_no_stored_values, context_needed
from temporal_flows.expressions.references import REF_KEY, contains_reference
from temporal_flows.expressions.templates import ExpressionError, ReferenceTouched, reading_environment, render_string


@pytest.fixture
def root(tmp_path: Path) -> Path:
    previous = storage._settings
    storage.configure(tmp_path / "root", threshold=1000)
    yield tmp_path / "root"
    storage._settings = previous


def test_only_the_biggest_values_are_stored_until_the_rest_fits(root: Path):
    values = {"big": "x" * 5000, "medium": "y" * 600, "small": 1}
    shrunk = TaskStorage("run/1", "tr").shrink(values)
    assert shrunk["small"] == 1 and shrunk["medium"] == "y" * 600
    reference = shrunk["big"]
    assert reference["kind"] == "json" and reference["size"] == 5002
    assert reference[REF_KEY].startswith("run_1/tr/outputs/")  # a run id never makes a sub-directory
    assert read_value(reference, "run/1") == "x" * 5000
    assert TaskStorage("r", "t").shrink({"a": 1}) == {"a": 1}
    many = TaskStorage("r", "t").shrink({f"k{i}": "z" * 400 for i in range(5)})  # each small, together too big
    assert sum(1 for value in many.values() if contains_reference(value)) == 3


def test_a_missing_or_escaping_reference_names_the_file(root: Path):
    reference = TaskStorage("r", "t").store_value("v", json.dumps("hello"))
    (root / reference[REF_KEY]).unlink()
    with pytest.raises(StoredValueError, match=str(root / reference[REF_KEY])):
        read_value(reference, "r")
    with pytest.raises(StoredValueError, match="not a stored value of run r"):
        read_value({REF_KEY: "../../etc/passwd"}, "r")
    with pytest.raises(StoredValueError, match="outside the storage"):  # even signed (no worker makes one)
        read_value(sign({REF_KEY: "../../etc/passwd", "size": 1, "kind": "file"}, "r", storage.settings().backend), "r")


def test_input_files_are_written_and_output_files_collected(root: Path, tmp_path: Path):
    source = tmp_path / "first"
    source.mkdir()
    (source / "a.csv").write_text("1,2\n")
    (source / "sub").mkdir()
    (source / "sub" / "b.csv").write_text("3,4\n")
    (source / "c.txt").write_text("no")
    files = collect_output_files(source, ["*.csv", "**/*.csv", "missing/*"], TaskStorage("r", "t1"))
    assert sorted(files) == ["a.csv", "sub/b.csv"]
    assert files["sub/b.csv"]["kind"] == "file" and read_value(files["sub/b.csv"], "r") == "3,4\n"

    target = tmp_path / "second"
    target.mkdir()
    stored_text = TaskStorage("r", "t2").store_value("v", json.dumps("from a value"))
    stage_input_files(target, {"in/a.csv": files["a.csv"], "note.txt": "literal", "value.txt": stored_text,
                               "data.json": {"n": 1}}, "r")
    assert (target / "in" / "a.csv").read_text() == "1,2\n"
    assert (target / "note.txt").read_text() == "literal"
    assert (target / "value.txt").read_text() == "from a value"
    assert json.loads((target / "data.json").read_text()) == {"n": 1}
    with pytest.raises(ApplicationError, match="outside the working directory"):
        stage_input_files(target, {"../escape.txt": "x"}, "r")
    (root / files["a.csv"][REF_KEY]).unlink()
    with pytest.raises(ApplicationError, match="cannot read the stored value"):
        stage_input_files(target, {"again.csv": files["a.csv"]}, "r")


def test_templates_meeting_a_reference_raise_in_the_workflow_and_read_it_on_a_worker():
    reference = {REF_KEY: "r/t/outputs/0-data.json", "size": 12, "kind": "json"}
    context = {"outputs": {"t": {"vars": {"data": reference, "n": 3}}}}
    assert render_string("{{ outputs.t.vars.n }}", context) == "3"
    for template in ("{{ outputs.t.vars.data | length }}", "{{ outputs.t['vars']['data'] }}", "{{ outputs.t.vars }}"):
        with pytest.raises(ReferenceTouched) as raised:
            render_string(template, context)
        assert isinstance(raised.value, ExpressionError) and "r/t/outputs/0-data.json" in str(raised.value)
    env = reading_environment(True, lambda found: ["a", "b"] if found is reference else None)
    assert render_string("{{ outputs.t.vars.data | length }}", context, env=env) == "2"
    assert render_string("{{ outputs.t.vars }}", context, env=env) == '{"data":["a","b"],"n":3}'


def test_a_worker_render_ships_only_what_its_templates_read():
    context = {"outputs": {"a": 1, "b": 2, "c": 3}, "tasks": {"a": {}}, "inputs": {"k": "a"}, "vars": {}}
    assert context_needed(["{{ outputs.a | length }}", "{{ flows.b }}"], context) == {"outputs": {"a": 1, "b": 2}}
    assert context_needed(["{{ outputs[inputs.k] }}"], context) == {"outputs": context["outputs"], "inputs": {"k": "a"}}
    assert context_needed(["{{ render('{{ vars }}') }}"], context) == context


def test_a_runnable_property_may_not_carry_a_reference_except_input_files():
    reference = {REF_KEY: "r/t/outputs/0-data.json", "size": 3_000_000}
    check_no_stored_values({"input_files": {"a": reference}, "commands": ["echo"]})
    with pytest.raises(ExpressionError, match="property `commands`.*3000000 bytes"):
        check_no_stored_values({"commands": ["echo", reference]})


def test_a_reference_is_read_only_when_signed_for_the_reading_root_run(root: Path, tmp_path: Path):
    reference = TaskStorage("child", "t", root_run_id="parent").store_value("v", json.dumps("secret"))
    assert reference["run"] == "parent" and len(reference["sig"]) == 64
    assert stored(reference, "parent") and read_value(reference, "parent") == "secret"
    assert not stored(reference, "child") and not stored(reference, "other")  # bound to the root run
    unsigned = {key: value for key, value in reference.items() if key != "sig"}
    assert not stored(unsigned, "parent")
    for field, value in (("$tflowRef", "other/t/outputs/0-v.json"), ("run", "other"), ("kind", "file"), ("size", 1)):
        assert not stored({**reference, field: value}, "parent"), f"a changed {field} still verifies"
    assert not stored({**reference, "sig": "0" * 64}, "parent")
    # Plain data shaped like a reference is written into inputFiles as the data it is.
    workdir = tmp_path / "work"
    workdir.mkdir()
    stage_input_files(workdir, {"forged.json": unsigned, "real.txt": reference}, "parent")
    assert json.loads((workdir / "forged.json").read_text()) == unsigned
    assert (workdir / "real.txt").read_text() == "secret"
    stage_input_files(workdir, {"other.json": reference}, "other")
    assert json.loads((workdir / "other.json").read_text()) == reference


def test_the_key_file_is_private_and_shared_by_every_worker_of_the_storage(root: Path, tmp_path: Path):
    reference = TaskStorage("r", "t").store_value("v", json.dumps(1))
    key_file = root / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_text().strip()) == 64
    assert not [path for path in root.iterdir() if path.name.startswith(KEY_FILE + ".")]  # no temporary left
    other = tmp_path / "other-root"
    storage.configure(other, threshold=1000)  # another storage: another key, so the reference is foreign
    assert not stored(reference, "r")
    storage.configure(root, threshold=1000)
    assert stored(reference, "r")


def test_shrink_stores_data_shaped_like_a_reference_as_any_value(root: Path):
    forged = {REF_KEY: "elsewhere/t/outputs/0-x.json", "size": 1, "kind": "json", "pad": "p" * 5000}
    shrunk = TaskStorage("r", "t").shrink({"forged": forged})
    assert shrunk["forged"] != forged and stored(shrunk["forged"], "r")
    assert read_value(shrunk["forged"], "r") == forged


def test_a_key_from_the_environment_is_used_and_not_handed_to_tasks(root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(storage_keys, "_env_key", None)
    monkeypatch.setenv(storage_keys.KEY_ENV, "k" * 32)
    reference = TaskStorage("r", "t").store_value("v", json.dumps(1))
    assert storage_keys.KEY_ENV not in os.environ  # task processes inherit the worker's environment
    assert not (root / KEY_FILE).exists()
    assert stored(reference, "r")
    monkeypatch.setattr(storage_keys, "_env_key", None)
    monkeypatch.setenv(storage_keys.KEY_ENV, "short")
    with pytest.raises(ApplicationError, match="TFLOW_STORAGE_KEY is too short"):
        TaskStorage("r", "t").store_value("v", json.dumps(1))
