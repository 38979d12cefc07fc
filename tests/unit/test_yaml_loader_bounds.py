"""The bounded YAML loader in process (issue 14 part F): both parsers (libyaml's and PyYAML's own)
refuse an alias bomb, deep nesting and an alias inside its own anchor within milliseconds of CPU;
they read every example flow exactly as PyYAML's SafeLoader does; files are read at most to the
size limit; JSON text is held to the same bounds. `tests/e2e/test_yaml_bounds.py` runs the CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from temporal_flows.language.source import (
    FlowYamlLoader,
    PurePythonLoader,
    YamlLimitError,
    parse_json_text,
    parse_yaml,
    read_source,
)
from temporal_flows.model.problems import FlowError

REPO = Path(__file__).resolve().parents[2]


class PureFlowLoader(PurePythonLoader):
    """PyYAML's own parser with the flows' YAML 1.2 booleans (FlowYamlLoader is on libyaml's here)."""


PureFlowLoader.yaml_implicit_resolvers = FlowYamlLoader.yaml_implicit_resolvers
LOADERS = [FlowYamlLoader, PureFlowLoader]


def laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def refused(loader: type, text: str) -> tuple[YamlLimitError, float]:
    """The limit error `loader` raises for `text`, and the CPU seconds it took."""
    started = time.process_time()
    with pytest.raises(YamlLimitError) as raised:
        yaml.load(text, Loader=loader)
    return raised.value, time.process_time() - started


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_an_alias_bomb_is_refused_at_once_by_either_parser(loader: type):
    error, cpu = refused(loader, laughs(12))  # 9**12 nodes if expanded
    assert "makes the YAML expand to more than 100,000 nodes" in str(error.problem)
    assert error.problem_mark is not None and error.problem_mark.line == 5  # `*a4` in a5, 0-based
    assert cpu < 0.5, f"{cpu:.2f} s of CPU"


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_nesting_past_the_depth_limit_is_refused_by_either_parser(loader: type):
    error, cpu = refused(loader, "a:\n" + "".join("  " * level + f"- k{level}:\n" for level in range(1, 300)) + "      x\n")
    assert "nested more than 100 levels deep" in str(error.problem)
    assert cpu < 0.5
    error, _ = refused(loader, "[" * 101 + "]" * 101)
    assert error.problem_mark is not None and error.problem_mark.column == 100
    assert yaml.load("[" * 100 + "]" * 100, Loader=loader) is not None  # the limit itself is allowed


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_an_alias_inside_its_own_anchor_is_refused(loader: type):
    error, _ = refused(loader, "a: &a {b: [*a]}\n")
    assert "stands inside its own anchor" in str(error.problem)


def test_a_few_aliases_and_merge_keys_expand_as_pyyaml_expands_them():
    text = ("base: &base {retry: 3, labels: {team: a}}\nmore: &more {retry: 9, timeout: PT1S}\none: *base\n"
            "two: {<<: [*base, *more], retry: 4}\n")
    expected = yaml.load(text, Loader=yaml.SafeLoader)
    assert yaml.load(text, Loader=FlowYamlLoader) == expected
    root = parse_yaml(text, "flow.yaml")
    assert root == expected and root["one"] is not root["base"]
    assert root["two"].value_location("timeout").line == 2  # a merged value keeps its own place
    with pytest.raises(FlowError, match=r"^flow\.yaml:1:9: `<<` merges a mapping or a list of mappings$"):
        parse_yaml("x: {<<: 5}\n", "flow.yaml")
    with pytest.raises(FlowError, match=r"^flow\.yaml:1:4: invalid YAML: could not determine a constructor for the tag '!foo'$"):
        parse_yaml("x: !foo bar\n", "flow.yaml")


def _example_texts() -> list[Path]:
    found = [*REPO.glob("examples/**/*.yaml"), *REPO.glob("tests/histories/flows/*.yaml")]
    assert len(found) >= 5
    return found


@pytest.mark.parametrize("path", _example_texts(), ids=lambda path: path.name)
def test_every_example_reads_as_pyyaml_reads_it(path: Path):
    class Reference(yaml.SafeLoader):
        pass

    Reference.yaml_implicit_resolvers = FlowYamlLoader.yaml_implicit_resolvers  # the same YAML 1.2 booleans
    text = path.read_text()
    expected: Any = yaml.load(text, Loader=Reference)
    for loader in LOADERS:
        assert yaml.load(text, Loader=loader) == expected, loader.__name__


def test_a_file_is_read_at_most_to_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TFLOW_MAX_YAML_BYTES", "1000")
    with pytest.raises(FlowError, match=r"^/dev/zero:1:1: more than 1,000 bytes of YAML, over the 1,000-byte limit"):
        read_source("/dev/zero")  # endless: only 1,001 bytes are read
    small = tmp_path / "flow.yaml"
    small.write_text("id: x\n" * 100)
    assert read_source(small) == "id: x\n" * 100
    small.write_text("id: x\n" * 200)
    with pytest.raises(FlowError, match=r"flow\.yaml:1:1: 1,200 bytes of YAML"):
        read_source(small)
    with pytest.raises(FlowError, match=r"missing\.yaml:1:1: cannot read the file: No such file"):
        read_source(tmp_path / "missing.yaml")


def test_json_text_is_held_to_the_same_bounds():
    assert parse_json_text('{"a": [1, {"b": 2e3}]}') == {"a": [1, {"b": 2000.0}]}
    assert parse_json_text("[" * 100 + "]" * 100)
    for text, bound in (("[" * 101 + "]" * 101, "nested more than 100 levels"), ("[" * 50_000 + "]" * 50_000, "nested"),
                        ("[" + ",".join(["1"] * 100_001) + "]", "more than 100,000 values")):
        started = time.process_time()
        with pytest.raises(ValueError, match=bound):
            parse_json_text(text)
        assert time.process_time() - started < 0.5


def test_an_integer_past_pythons_digit_limit_is_a_problem_at_its_line():
    text = "id: x\nnamespace: a\ntasks:\n  - id: t\n    type: return\n    format: " + "9" * 5000 + "\n"
    with pytest.raises(FlowError) as refused:
        parse_yaml(text, "big.yaml")
    problem = refused.value.problems[0]
    assert (problem.line, problem.column) == (6, 13)
    assert "4300 digits" in problem.message
