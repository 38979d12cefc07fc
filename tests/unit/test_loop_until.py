"""`loop_until` without a server: its names (LoopUntil, WaitFor), `checkFrequency` read and checked
(problems at their file and line), its condition allowed to read the loop's own outputs and never
rendered ahead by a worker, the schema agreeing with the loader, plugin defaults, and the graph."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import pytest
from jsonschema import Draft7Validator

from temporal_flows.engine.worker_render import task_templates
from temporal_flows.language.graph import build_graph
from temporal_flows.language.loader import load_flow_text
from temporal_flows.language.schema import flow_schema
from temporal_flows.model.problems import FlowError
from temporal_flows.tasks import TASK_TYPES, resolve_type
from temporal_flows.tasks.flowable.loop_until import (
    DEFAULT_INTERVAL_S, DEFAULT_MAX_ITERATIONS, MAX_ITERATIONS, Frequency, _Loop, frequency,
)
from tests.unit.test_schema import loader_accepts, schema_problem


def flow(loop: str, after: str = "") -> str:
    """A flow whose task `loop` is `loop` (YAML lines of a task under `tasks:`)."""
    return "id: f\nnamespace: n\ntasks:\n" + textwrap.indent(textwrap.dedent(loop).strip("\n"), "  ") + "\n" + after


def problems(text: str) -> list[tuple[int, str]]:
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "loop.yaml")
    assert all(problem.file == "loop.yaml" for problem in raised.value.problems)
    return [(problem.line, problem.message) for problem in raised.value.problems]


GOOD = """
    - id: loop
      type: io.kestra.plugin.core.flow.LoopUntil
      condition: "{{ outputs.check.value == 'done' or outputs.loop.iterationCount >= 3 }}"
      failOnMaxReached: true
      checkFrequency:
        interval: PT5S
        maxIterations: 10
        maxDuration: 1h
      tasks:
        - {id: check, type: return, format: "{{ outputs.loop.iterationCount }}"}
      errors:
        - {id: oops, type: log, message: oops}
"""


@pytest.mark.parametrize("name", ["io.kestra.plugin.core.flow.LoopUntil", "io.kestra.plugin.core.flow.WaitFor", "loop_until"])
def test_kestras_names_resolve_to_the_loop(name: str):
    assert resolve_type(name) is TASK_TYPES["loop_until"]


def test_a_loop_loads_with_its_condition_reading_its_own_outputs():
    loaded = load_flow_text(flow(GOOD), "loop.yaml")
    [loop] = loaded.flow.tasks
    assert loop.type == "loop_until" and [child.id for child in loop.tasks] == ["check"]
    assert loop.properties["check_frequency"] == {"interval": "PT5S", "maxIterations": 10, "maxDuration": "1h"}
    assert loop.properties["fail_on_max_reached"] is True
    assert [task.id for task in loop.branches["errors"]] == ["oops"]


def test_other_tasks_still_cannot_read_their_own_outputs():
    text = flow(GOOD.replace('format: "{{ outputs.loop.iterationCount }}"', 'format: "{{ outputs.check.value }}"'))
    assert problems(text) == [(13, "task `check`, `format`: a task cannot use its own outputs")]


def test_frequency_reads_both_spellings_and_defaults():
    assert frequency(None) == Frequency(DEFAULT_INTERVAL_S, None, None) == frequency({"interval": None})
    assert frequency({"max_iterations": 3, "maxDuration": "PT1M30S", "interval": 0.5}) == Frequency(0.5, 3, 90.0)


@pytest.mark.parametrize("value, message", [
    ({"interval": "soon"}, "`interval` must be an ISO 8601 duration like `PT5M` or a short form like `5m`, `30s`, `1h30m`, got 'soon'"),
    ({"interval": "PT0S"}, "`interval` must be a positive duration, got 'PT0S'"),
    ({"maxDuration": -1}, "`maxDuration` must be a positive duration, got -1"),
    ({"maxIterations": 0}, "`maxIterations` must be a whole number ≥ 1, got 0"),
    ({"maxIterations": "3"}, "`maxIterations` must be a whole number ≥ 1, got '3'"),
    ({"maxIterations": MAX_ITERATIONS + 1}, f"`maxIterations` may be at most {MAX_ITERATIONS:,}"),
    ({"maxIteration": 3}, "unknown field `maxIteration` (expected `interval`, `maxIterations`, `maxDuration`) (did you mean `maxIterations`?)"),
    ({"max_iteration": 3}, "(did you mean `max_iterations`?)"),
    ([1], "expected a mapping of `interval`, `maxIterations`, `maxDuration`, got [1]"),
])
def test_frequency_names_what_is_wrong(value: object, message: str):
    with pytest.raises(ValueError) as raised:
        frequency(value)
    assert message in str(raised.value)


def test_a_loop_without_max_iterations_fails_at_the_default_bound():
    """The bound is decided from the count alone (no clock is read without `maxDuration`)."""
    started = datetime.now(timezone.utc)
    loop = _Loop(None, Frequency(), started, count=DEFAULT_MAX_ITERATIONS - 1)  # type: ignore[arg-type]
    assert loop._limit_reached() is None
    loop.count += 1
    limit = loop._limit_reached()
    assert limit is not None and limit.error_type == "LoopLimitReached" and limit.always_fails
    assert "set `maxIterations`" in limit.why
    explicit = _Loop(None, Frequency(max_iterations=2000), started, count=DEFAULT_MAX_ITERATIONS)  # type: ignore[arg-type]
    assert explicit._limit_reached() is None
    explicit.count = 2000
    reached = explicit._limit_reached()
    assert reached is not None and reached.error_type == "MaxIterationsReached" and not reached.always_fails


def test_a_bad_check_frequency_and_a_missing_condition_are_problems_at_their_lines():
    text = flow("""
        - id: loop
          type: io.kestra.plugin.core.flow.WaitFor
          checkFrequency:
            maxIterations: 3
            interval: soon
          tasks:
            - {id: r, type: return, format: x}
        - id: other
          type: loop_until
          condition: "{{ outputs.r2.value | jq('.') }}"
          checkFrequency: {maxDuration: PT0S}
          tasks:
            - {id: r2, type: return, format: x}
    """)
    assert problems(text) == [
        (4, "task `loop` (loop_until) is missing `condition`"),
        (7, "`checkFrequency`: `interval` must be an ISO 8601 duration like `PT5M` or a short form like `5m`, `30s`, "
            "`1h30m`, got 'soon'"),
        (13, "`condition`: `jq(...)` cannot run in a loop's condition: only a worker runs it, and the condition renders "
             "in the workflow after each iteration; extract the value in a task of the loop (an `output` extractor of "
             "type jmespath, or a script) and test that task's output"),
        (14, "`checkFrequency`: `maxDuration` must be a positive duration, got 'PT0S'"),
    ]


def test_a_loop_needs_tasks():
    assert problems(flow("""
        - id: loop
          type: loop_until
          condition: "true"
    """)) == [(4, "task `loop` (loop_until) is missing `tasks`")]


def test_the_condition_is_not_among_the_templates_rendered_when_the_loop_starts():
    """A worker renders a task's templates ahead only when it starts; a loop's condition then would be stale."""
    loaded = load_flow_text(flow(GOOD.replace("failOnMaxReached: true", "runIf: \"{{ inputs.go ?? true }}\"")), "loop.yaml")
    [loop] = loaded.flow.tasks
    assert task_templates(loop) == ["{{ inputs.go ?? true }}"]


def test_plugin_defaults_fill_a_loops_check_frequency():
    text = flow("""
        - id: loop
          type: io.kestra.plugin.core.flow.WaitFor
          condition: "true"
          checkFrequency: {maxIterations: 5}
          tasks:
            - {id: r, type: return, format: x}
    """, "pluginDefaults:\n  - type: io.kestra.plugin.core.flow.LoopUntil\n    values:\n      checkFrequency: {interval: PT2S}\n")
    [loop] = load_flow_text(text, "loop.yaml").flow.tasks
    assert frequency(loop.properties["check_frequency"]) == Frequency(2.0, 5, None)


VERDICTS = {
    "good": (True, flow(GOOD)),
    "snake_case frequency": (True, flow(GOOD.replace("maxIterations", "max_iterations").replace("checkFrequency", "check_frequency"))),
    "bad interval": (False, flow(GOOD.replace("PT5S", "soon"))),
    "unknown frequency field": (False, flow(GOOD.replace("maxDuration", "maxWait"))),
    "too many iterations": (False, flow(GOOD.replace("maxIterations: 10", f"maxIterations: {MAX_ITERATIONS + 1}"))),
    "no condition": (False, flow(GOOD.replace("condition:", "conditions:"))),
}


@pytest.mark.parametrize("name", list(VERDICTS))
def test_the_schema_and_the_loader_agree(name: str):
    valid, text = VERDICTS[name]
    assert loader_accepts(text) is valid
    assert (schema_problem(text) is None) is valid, schema_problem(text)


def test_the_schema_describes_the_loop_and_its_check_frequency():
    schema = flow_schema()
    Draft7Validator.check_schema(schema)
    loop = schema["definitions"]["task.loop_until"]
    frequency_schema = loop["properties"]["checkFrequency"]
    assert frequency_schema == loop["properties"]["check_frequency"]
    assert {"interval", "maxIterations", "maxDuration"} <= set(frequency_schema["properties"])
    assert frequency_schema["additionalProperties"] is False
    assert {"io.kestra.plugin.core.flow.LoopUntil", "io.kestra.plugin.core.flow.WaitFor"} <= set(
        schema["definitions"]["task"]["properties"]["type"]["enum"])


def test_the_graph_draws_the_loop_as_a_box_of_its_tasks():
    graph = build_graph(load_flow_text(flow(GOOD, "  - {id: after, type: log, message: done}\n"), "loop.yaml").flow)
    box = graph.group("loop")
    assert box is not None and box.kind == "loop_until" and "until {{ outputs.check.value" in box.label
    assert graph.node("check").group == "loop"
    assert [(edge.source, edge.target, edge.kind) for edge in graph.edges] == [
        ("loop", "oops", "errors"), ("loop", "after", "order"),
    ]
