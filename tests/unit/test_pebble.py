"""Kestra's Pebble forms in templates (SPEC §3.6): `??`, `c ? a : b`, Pebble tests, Kestra's filters
and functions, `render()`, and the errors each gives before the start and at run time."""

from __future__ import annotations

import pytest

from temporal_flows.expressions.templates import ExpressionError, analyze, render_string
from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError

CONTEXT = {
    "none": None,
    "two": 2,
    "outputs": {"t": {"value": "v", "empty": "", "nothing": None}},
    "taskrun": {"value": '{"key": "k", "value": {"sub": 1}}', "attemptsCount": 3},
    "parent": {"taskrun": {"value": "value 1"}},
    "vars": {"greeting": "hello {{ outputs.t.value }}", "indirect": "{{ vars.greeting }}!", "plain": 42},
}


def rendered(template: str, **extra) -> str:
    return render_string(template, {**CONTEXT, **extra})


def failure(template: str) -> str:
    with pytest.raises(ExpressionError) as raised:
        rendered(template)
    return str(raised.value)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 'a ? b : c' }}", "a ? b : c"),
        ('{{ "x ?? y" }}', "x ?? y"),
        ("{{ 'is it?' ~ ' yes: ' ~ two }}", "is it? yes: 2"),
        ("{{ two == 2 ? 'a?b' : 'c:d' }}", "a?b"),
        ("{{ none ?? '??' }}", "??"),
        ("why? {{ two }} : because", "why? 2 : because"),
        ("{{ {'k?': 'v:'} | json }}", '{"k?":"v:"}'),
    ],
)
def test_question_marks_and_colons_inside_strings_and_text_are_untouched(template, expected):
    assert rendered(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ none ?? two }}", "2"),
        ("{{ none ?? missing ?? 'third' }}", "third"),
        ("{{ outputs.t.value ?? 'x' }}", "v"),
        ("{{ outputs.t.missing.deeper.still ?? 'd' }}", "d"),
        ("{{ outputs.nope['a'][0] ?? 'd' }}", "d"),
        ("{{ outputs.t.empty ?? 'd' }}", ""),  # empty text is a value
        ("{{ none ?? 'x' | upper }}", "X"),  # binds tighter than filters, as in Kestra
        ("{{ null ?? 'literal null' }}", "literal null"),
        ("{{ outputs.t.nothing ??? 'd' }}", ""),  # ??? keeps null, replaces only undefined
        ("{{ outputs.t.missing ??? 'd' }}", "d"),
        ("{{ two ?? (two | jq('.no.such')) }}", "2"),  # the right side runs only when needed
        ("{% for i in ['t', 'u'] %}{{ outputs[i].value ?? i }}{% endfor %}", "vu"),  # loop variables
        ("{% macro m(a) %}{{ a ?? 'd' }}{% endmacro %}{{ m(none) }}{{ m(1) }}", "d1"),
    ],
)
def test_null_coalescing(template, expected):
    assert rendered(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ two == 2 ? 'two' : 'other' }}", "two"),
        ("{{ two == 1 ? 'one' : two == 2 ? 'two' : 'many' }}", "two"),
        ("{{ two > 1 ? (two > 5 ? 'big' : 'mid') : 'small' }}", "mid"),
        ("{{ two > 1 ? two > 5 ? 'big' : 'mid' : 'small' }}", "mid"),
        ("{{ outputs.t.missing ?? none ? 'set' : 'unset' }}", "unset"),
        ("{{ (outputs.t.value ?? 'x') == 'v' ? outputs.t.value ~ '!' : 'no' }}", "v!"),
        ("{{ taskrun.attemptsCount == 3 ? 'ok' : ko }}", "ok"),  # the branch not taken may be undefined
        ("{% set x = two == 2 ? 'yes' : 'no' %}{{ x }}", "yes"),
        ("{{ [two == 2 ? 'a' : 'b', 'c'] | join(',') }}", "a,c"),
    ],
)
def test_ternary(template, expected):
    assert rendered(template) == expected


def test_ternary_taking_an_undefined_branch_fails_naming_it():
    assert "'ko' is undefined" in failure("{{ taskrun.attemptsCount == 2 ? 'ok' : ko }}")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ outputs.t.value is defined }}", "true"),
        ("{{ outputs.t.missing is defined }}", "false"),
        ("{{ outputs.missing.deeper.value is defined }}", "false"),
        ("{{ nowhere is defined }}", "false"),
        ("{{ outputs.t.nothing is defined }}", "false"),  # Pebble: null is not defined
        ("{{ outputs.t.missing is not defined }}", "true"),
        ("{{ outputs.t.missing.x is not defined ? 'fallback' : outputs.t.missing.x }}", "fallback"),
        ("{% if outputs.t.value is defined and two is not null %}both{% endif %}", "both"),
        ("{{ none is null }}|{{ two is null }}|{{ two is not null }}", "true|false|true"),
        ("{{ outputs.t.empty is empty }}|{{ [] is empty }}|{{ {} is empty }}|{{ none is empty }}|{{ 'a' is empty }}", "true|true|true|true|false"),
        ("{{ taskrun.value is json }}|{{ parent.taskrun.value is json }}|{{ {'a': 1} is json }}|{{ two is json }}", "true|false|true|false"),
        ("{{ outputs.t.value equals 'v' }}|{{ [1, 2] contains 2 }}|{{ 'abc' contains 'd' }}", "true|true|false"),
        ("{{ outputs.t.missing.deeper | default('dflt') }}", "dflt"),
        ("{% if two == 1 %}one{% elseif two == 2 %}two{% else %}many{% endif %}|{{ 'elseif' }}", "two|elseif"),
    ],
)
def test_pebble_tests_and_operators(template, expected):
    assert rendered(template) == expected


def test_null_and_empty_tests_stay_strict_on_missing_values():
    assert "has no attribute 'missing'" in failure("{{ outputs.t.missing is null }}")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ taskrun.value | jq('.key') }}", '["k"]'),  # text is parsed as JSON; Kestra returns a list
        ("{{ taskrun.value | jq('.value') }}", '[{"sub":1}]'),
        ("{{ {'a': [1, 2, 3]} | jq('.a[] | select(. > 1)') }}", "[2,3]"),
        ("{{ jq(taskrun.value, '.key') | first }}", "k"),
        ("{{ none | jq('.a') }}", ""),
        ("{{ two | jq('$ENV') }}", "[null]"),  # no environment inside a workflow
        ("{{ {'b': 1, 'a': 2} | keys }}|{{ {'a': 2} | values }}", '["b","a"]|[2]'),
        ("{{ 'Hello, Wörld!' | slugify }}", "hello-world"),
        ("{{ {'a': [1, none]} | toJson }}|{{ fromJson('{\"x\": [1]}').x | first }}", '{"a":[1,null]}|1'),
        ("{{ 'a.b.c' | substringBefore('.') }}|{{ 'a.b.c' | substringAfterLast('.') }}|{{ 'a,b' | split(',') | length }}", "a|c|2"),
        ("{{ 'abc' | startsWith('ab') }}|{{ [3, 1] | first }}|{{ 'x' | upper }}", "true|3|X"),
    ],
)
def test_kestra_filters_and_functions(template, expected):
    assert rendered(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ t | date }}", "2026-11-30T10:05:03.120000Z"),  # Kestra's default `iso`, in UTC
        ("{{ t | date('yyyy-MM-dd') }}|{{ t | date('dd MMM yy, EEEE h:mm a') }}", "2026-11-30|30 Nov 26, Monday 10:05 AM"),
        ("{{ t | date('HH:mm XXX', timeZone='Asia/Tokyo') }}|{{ t | date('iso_date_time', 'Europe/Paris') }}",
         "19:05 +09:00|2026-11-30T11:05:03.12+01:00[Europe/Paris]"),
        ("{{ t | date('iso_instant') }}|{{ t | date('sql_seq') }}|{{ t | date(\"'at' HH'h'\") }}", "2026-11-30T10:05:03.120Z|2026-11-30 10:05:03|at 10h"),
        ("{{ '2024-01-31T00:00:00Z' | dateAdd(1, 'MONTHS', 'yyyy-MM-dd') }}|{{ t | dateAdd(-2, 'DAYS', 'iso_local_date') }}", "2024-02-29|2026-11-28"),
        ("{{ '30/11/2026' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy') }}|{{ 0 | date('iso_sec') }}|{{ t | timestamp }}",
         "2026-11-30|1970-01-01T00:00:00Z|1796033103"),
        ("{{ now() | date('yyyy') }}", "2026"),
    ],
)
def test_date_filters(template, expected):
    assert rendered(template, t="2026-11-30T10:05:03.120Z", now=lambda: "2026-11-30T10:05:03.120Z") == expected


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 'soon' | date }}", "'soon' is not an ISO-8601 date"),
        ("{{ t | date('yyyy QQ') }}", "pattern letter 'Q' is not supported"),
        ("{{ t | date('iso', 'Mars/Olympus') }}", "unknown time zone 'Mars/Olympus'"),
        ("{{ t | dateAdd(1, 'FORTNIGHTS') }}", "unknown unit 'FORTNIGHTS'"),
    ],
)
def test_date_failures_name_the_expression_and_the_reason(template, reason):
    with pytest.raises(ExpressionError) as raised:
        rendered(template, t="2026-11-30T10:05:03.120Z")
    assert str(raised.value).startswith(f"cannot render `{template}`: date")
    assert reason in str(raised.value)


def test_jq_failures_name_the_expression_and_the_reason():
    message = failure("{{ parent.taskrun.value | jq('.key') }}")
    assert message.startswith("cannot render `{{ parent.taskrun.value | jq('.key') }}`: ")
    assert "'value 1' is not JSON" in message
    assert "Cannot index number" in failure("{{ two | jq('.a') }}")
    program = "{{ two | jq(vars.plain ~ '[') }}"  # not a literal: found when it runs
    assert "invalid jq program `42[`" in failure(program)
    assert "`now` is not available in flows (not deterministic)" in failure("{{ two | jq('now') }}")
    assert "`env` is not available" in failure("{{ two | jq('env.HOME') }}")


def test_render_renders_a_template_held_in_a_value_with_the_same_context():
    assert rendered("{{ render(vars.greeting) }}") == "hello v"
    assert rendered("{{ render(vars.indirect) }}") == "hello v!"  # again while it is a template
    assert rendered("{{ render(vars.indirect, false) }}") == "hello {{ outputs.t.value }}!"  # once
    assert rendered("{{ render(vars.plain) }}") == "42"
    assert rendered("{% for x in [1, 2] %}{{ render('{{ two * 2 }}') }}{% endfor %}") == "44"


def test_render_failures_name_both_expressions():
    message = failure("{{ render('{{ nope }}') }}")
    assert message == "cannot render `{{ render('{{ nope }}') }}`: cannot render `{{ nope }}`: 'nope' is undefined"
    with pytest.raises(ExpressionError) as raised:
        render_string("{{ render(vars.loop) }}", {"vars": {"loop": "{{ '{{' }} render(vars.loop) }}"}})
    assert str(raised.value).endswith("render: nested more than 10 deep (a value that renders itself?)")
    with pytest.raises(ExpressionError) as raised:
        render_string("{{ render(vars.a) }}", {"vars": {"a": "{{ '{{ vars.a }}' }}"}})
    assert "still a template after 10 passes" in str(raised.value)


@pytest.mark.parametrize(
    ("template", "ids"),
    [
        ("{{ outputs.a.value ?? outputs['b'].value }}", {"a", "b"}),
        ("{{ outputs.a.value is defined ? outputs.a.value : 'x' }}", {"a"}),
        ("{{ flows.step.out }}", {"step"}),
        ("{{ x == 'a?' ? tasks.c.output : 'b:' }}", {"c"}),
    ],
)
def test_analysis_reads_pebble_forms_and_finds_task_ids(template, ids):
    referenced, _ = analyze(template)
    assert referenced == ids


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ a ? b }}", "expected token ':'"),
        ("{{ a ?? }}", "unexpected"),
        ("{{ x is nosuch }}", "unknown test `nosuch`"),
        ("{{ x | jq('.[') }}", "invalid jq program `.[`"),
        ("{{ jq(x, '.a | ') }}", "invalid jq program `.a | `"),
    ],
)
def test_analysis_refuses_broken_forms(template, reason):
    with pytest.raises(ExpressionError) as raised:
        analyze(template)
    assert reason in str(raised.value)


def test_validation_accepts_pebble_and_names_unknown_ids_under_every_root():
    flow = "id: f\nnamespace: tests\ntasks:\n  - id: a\n    type: return\n    format: x\n  - id: t\n    type: return\n    format: \"{}\"\n"
    load_flow_text(flow.format("{{ outputs.a.value is defined ? outputs.a.value ?? 'x' : 'y' }}"), "flow.yaml")
    for root in ("outputs.nope.value ?? 'x'", "flows.nope.out"):
        with pytest.raises(FlowError) as raised:
            load_flow_text(flow.format("{{ " + root + " }}"), "flow.yaml")
        [problem] = [str(problem) for problem in raised.value.problems]
        assert problem.startswith("flow.yaml:9:13:") and "unknown task `nope`" in problem


def test_runs_started_before_pebble_forms_render_as_they_did():
    # Their histories have no `pebble-templates` marker: the interpreter renders them with plain Jinja2.
    assert render_string("{{ x is defined }}", {"x": None}, pebble=False) == "true"
    assert render_string("{{ x is defined }}", {"x": None}) == "false"
    with pytest.raises(ExpressionError, match="unexpected char '\\?'"):
        render_string("{{ x ? 1 : 2 }}", {"x": 1}, pebble=False)
    with pytest.raises(ExpressionError, match="'null' is undefined"):
        render_string("{{ null }}", {}, pebble=False)

