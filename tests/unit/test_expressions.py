from __future__ import annotations

import pytest

from temporal_flows.durations import parse_duration
from temporal_flows.expressions import ExpressionError, analyze, render, render_string


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
