"""Templates have a bounded cost (issue 14 A): each bound of `temporal_flows.expressions.bounds`
refused with `TemplateBudgetExceeded` naming the expression, within a bounded CPU time, while the
same forms under the bound still render; analysis never runs a template; objects print a fixed text.
"""

from __future__ import annotations

import re
import time

import pytest

from temporal_flows.expressions.bounds import LIMITS, WORKER_LIMITS
from temporal_flows.expressions.templates import (
    ExpressionError, JqOnWorker, TemplateBudgetExceeded, analyze, reading_environment, render, render_string,
)

CPU_BOUND_S = 4.0
"""What a refused render may cost: most stop in milliseconds; the costliest (sorting a 100,000-item
list per iteration until the item budget stops it) took 1.2 s of CPU on a quiet machine and 3.1 s
beside a CPU-bound process (both cores busy stretch CPU time too, through shared caches)."""

BIG = {"list": list(range(100_000)), "text": "x" * 1_000_000}


def refused(template: str, why: str, context: dict | None = None) -> str:
    """Render `template`: it must fail with TemplateBudgetExceeded naming it and matching `why`, cheaply."""
    started = time.process_time()
    with pytest.raises(TemplateBudgetExceeded) as raised:
        render_string(template, context or {"big": BIG})
    spent = time.process_time() - started
    message = str(raised.value)
    assert message.startswith(f"cannot render `{template.strip()}`"), message
    assert re.search(why, message), message
    assert spent < CPU_BOUND_S, f"{spent:.2f} s CPU for {template}"
    return message


@pytest.mark.parametrize(("template", "why"), [
    ("{{ (7 ** 30000000) > 1 }}", r"`7 \*\* 30000000` has over 10,000 bits"),
    ("{% set ns = namespace(n=3) %}{% for i in range(20) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
     r"`\*` making an integer of about .* bits \(at most 10,000\)"),
    ("{{ 'a' * 1000000000 }}", r"`\*` repeating into 1,000,000,000 characters \(at most 1,000,000\)"),
    ("{{ [1, 2] * 60000 }}", r"`\*` repeating into 120,000 items \(at most 100,000\)"),
    ("{{ range(100001) | length }}", r"range of 100,001 numbers \(at most 100,000\)"),
    ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
     r"more than 100,000 loop iterations and calls in one render"),
    ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
     r"more than 100,000 loop iterations and calls"),
    ("{% for i in range(2000) %}{{ 'y' * 1000 }}{% endfor %}", r"output over 1,000,000 characters in one render"),
    ("{% set s %}{% for i in range(2000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}ok", r"output over 1,000,000 characters"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", r"`~` made 1,048,576 characters"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", r"`\+` made 1,048,576 characters"),
    ("{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l | string }}",
     r"a literal made a value of more than 4,000,000 items and characters"),
    ("{{ '%01000000000d' % 1 }}", r"a format width of more than 9 digits"),
    ("{{ '{:>999999999}'.format(1) }}", r"formatting that can make"),
    ("{{ 'x'.center(10 ** 9) }}", r"`center` width of 1000000000"),
    ("{{ 'x'.ljust(10 ** 9) }}", r"`ljust` width"),
    ("{{ '1'.zfill(10 ** 9) }}", r"`zfill` width"),
    ("{{ (1).to_bytes(10 ** 9, 'big') }}", r"to_bytes length"),
    ("{{ 'x' | center(10 ** 9) }}", r"center width of 1000000000"),
    ("{{ big.text | indent(1000) }}", r"indent making a text"),
    ("{{ big.text | replace('x', big.text) }}", r"replace making a text of 1000000000000"),
    ("{{ big.text.replace('x', 'yy') }}", r"replace making a text of 2000000"),
    ("{{ ([big.text] * 2) | join(',') }}", r"join making a text"),
    ("{{ ','.join([big.text, big.text]) }}", r"join making a text"),
    ("{{ [1] | batch(1000000) | list }}", r"groups or items per group of 1000000"),
    ("{% for i in range(100000) %}{{ -1 in big.list }}{% endfor %}", r"more than 2,000,000 items"),
    ("{% for i in range(100000) %}{{ big.list | sort | length }}{% endfor %}", r"more than 2,000,000 items"),
    ("{% for i in range(100000) %}{{ big.list[1:] | length }}{% endfor %}", r"more than 2,000,000 items"),
    ("{% for i in range(100000) %}{{ big.list | join(',') | length }}{% endfor %}", r"more than 2,000,000 items"),
    ("{% for i in range(100000) %}{{ big.text.upper() | length }}{% endfor %}", r"more than 100,000,000 characters"),
    ("{{ render(\"{{ render('{% for i in range(100000) %}{% endfor %}') }}\") }}", r"more than 100,000 loop iterations"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}", r"nested too deep \(recursion\)"),
])
def test_each_bound_is_refused_naming_the_expression(template: str, why: str):
    refused(template, why)


def test_render_nesting_is_capped_by_the_budget_a_template_cannot_reset():
    loop = "{% set _render_nesting = -100 %}{{ '{{' }} render(vars.loop) }}"
    refused("{{ render(vars.loop) }}", r"render: nested more than 10 deep", {"vars": {"loop": loop}})


def test_render_of_a_huge_text_is_refused_before_compiling():
    refused("{{ render('{{ 1 }}' * 30000) }}", r"render\(\) of a text of 210,000 characters \(at most 100,000\)")


def test_the_same_forms_under_their_bounds_render():
    assert render_string("{{ 2 ** 100 }}", {}) == str(2**100)
    assert render_string("{{ 'ab' * 3 }}{{ [0] * 2 }}", {}) == "ababab[0,0]"
    assert len(render_string("{{ 'a' * 1000000 }}", {})) == LIMITS.text
    assert render_string("{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}x", {}) == "x"
    assert render_string("{{ range(100000) | list | length }}", {}) == "100000"
    assert render_string("{{ '%05d' % 42 }} {{ '{:>4}'.format(7) }} {{ 'x' | center(5) }}|", {}) == "00042    7   x  |"
    text = "{% set ns = namespace(s='') %}{% for i in range(1000) %}{% set ns.s = ns.s ~ i ~ ',' %}{% endfor %}{{ ns.s | length }}"
    assert render_string(text, {}) == str(sum(len(str(i)) + 1 for i in range(1000)))
    assert render_string("{{ big.list | join(',') | length }}", {"big": BIG}) == str(len(",".join(map(str, BIG["list"]))))


def test_one_budget_spans_every_string_of_a_rendered_value():
    loop = "{% for i in range(60000) %}{% endfor %}"
    assert render({"a": loop}, {}) == {"a": ""}
    with pytest.raises(TemplateBudgetExceeded):
        render({"a": loop, "b": [loop]}, {})


def test_a_worker_renders_stored_sizes_with_its_own_limits_and_the_same_step_budget():
    env = reading_environment(True, lambda reference: reference)
    assert len(render_string("{{ 'a' * 3000000 }}", {}, env=env)) == 3_000_000
    assert WORKER_LIMITS.steps == LIMITS.steps
    with pytest.raises(TemplateBudgetExceeded):
        render_string("{% for a in range(100000) %}{% for b in range(2) %}{% endfor %}{% endfor %}", {}, env=env)


def test_analysis_never_runs_a_template():
    started = time.process_time()
    referenced, unknown = analyze("{{ 'a' * 1000000000 }}{{ 0 | jq('last(range(1e12))') }}{{ (7 ** 30000000) > 1 }}")
    assert (referenced, unknown) == (set(), set())
    assert time.process_time() - started < 0.5
    with pytest.raises(ExpressionError, match="invalid jq program"):
        analyze("{{ 0 | jq('last(range(') }}")


def test_jq_outside_a_workflow_runs_and_its_refusal_names_the_worker():
    assert render_string("{{ x | jq('.a') | first }}", {"x": {"a": 5}}) == "5"
    assert "runs only on a worker" in str(JqOnWorker("{{ 1 | jq('.') }}"))


@pytest.mark.parametrize(("template", "printed"), [
    ("{{ range }}", "<function range>"),
    ("{{ cycler }}", "<class Cycler>"),
    ("{{ cycler(1, 2) }}", "<Cycler>"),
    ("{{ joiner() }}", "<Joiner>"),
    ("{{ namespace(a=1) }}", "<Namespace>"),
    ("{{ 'a'.upper }}", "<function upper>"),
    ("{{ fromJson }}", "<function from_json>"),
    ("{{ [1, 2] | map('string') }}", "<generator>"),
    ("{{ [fromJson] }}", '["<function from_json>"]'),
    ("{{ [1, 2] | map('string') | json }}", '"<generator>"'),
    ("{{ range(3) }}", "range(0, 3)"),
])
def test_a_printed_function_or_object_is_a_fixed_text(template: str, printed: str):
    rendered = render_string(template, {})
    assert rendered == printed
    assert not re.search(r"0x[0-9a-f]{6,}", rendered)


def test_data_prints_as_before():
    context = {"x": {"a": [1, True, None, "s"]}, "t": (1, "b")}
    assert render_string("{{ x }} {{ x.a[1] }} {{ x.a[2] }}|{{ t }} {{ 1.5 }}", context) == '{"a":[1,true,null,"s"]} true |[1,"b"] 1.5'
