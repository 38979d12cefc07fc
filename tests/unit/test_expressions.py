from __future__ import annotations

import pytest

from temporal_flows.expressions.templates import ExpressionError, analyze, render, render_string
from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.problems import FlowError


def test_renders_kestra_and_go_template_forms():
    context = {"task": {"id": "t1"}, "tasks": {"a": {"output": 3}}, "output": {"x": 1}}
    assert render_string('echo "running {{task.id}}"', context) == 'echo "running t1"'
    assert render_string("{{ .tasks.a.output }}", context) == "3"
    assert render_string("{{ .output.x }}", context) == "1"
    assert render({"k": ["{{ task.id }}", 2]}, context) == {"k": ["t1", 2]}


def test_undefined_names_the_expression():
    with pytest.raises(ExpressionError) as raised:
        render_string("{{ outputs.missing.value }}", {"outputs": {}})
    assert "`{{ outputs.missing.value }}`" in str(raised.value)
    assert "missing" in str(raised.value)


def test_sandbox_blocks_unsafe_attributes():
    with pytest.raises(ExpressionError):
        render_string("{{ task.__class__.__mro__ }}", {"task": {}})


def test_analyze_finds_task_references_and_unknown_names():
    referenced, unknown = analyze("{{ outputs.a.value }} {{ tasks['b'].output }} {{ foo }} {{ range(2) | list }}")
    assert referenced == {"a", "b"}
    assert unknown == {"foo"}
    with pytest.raises(ExpressionError):
        analyze("{{ oops ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT5M", 300), ("P1DT2H", 93600), ("PT0.5S", 0.5), ("5m", 300), ("30s", 30), ("1h30m", 5400), ("100ms", 0.1), (12, 12)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "P", "PT", "5 parsecs", "", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("template", ["{{ [1, 2, 3] | random }}", "{{ lipsum(1) }}"])
def test_non_deterministic_template_features_are_gone(template: str):
    # A replay must render what the run rendered: no randomness in templates.
    with pytest.raises(ExpressionError):
        render_string(template, {})


def test_random_filter_is_refused_at_validation():
    with pytest.raises(ExpressionError) as raised:
        analyze("{{ [1, 2] | random }}")
    assert "unknown filter `random` (not deterministic" in str(raised.value)


def test_lipsum_is_refused_at_validation_saying_why():
    problems = _problems_of("{{ lipsum(2) }}")
    assert problems == ["flow.yaml:5:13: task `t`, `format`: unknown variable `lipsum` (not deterministic, so not available in flows) in `{{ lipsum(2) }}`"]


def test_unknown_filter_is_a_validation_problem_with_its_location():
    problems = _problems_of("{{ x | no_such_filter }}")
    assert len(problems) == 1 and problems[0].startswith("flow.yaml:5:13:") and "unknown filter `no_such_filter`" in problems[0]


def _problems_of(format_template: str) -> list[str]:
    text = f"id: f\nnamespace: tests\ntasks:\n  - id: t\n    format: \"{format_template}\"\n    type: return\n"
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "flow.yaml")
    return [str(problem) for problem in raised.value.problems]
