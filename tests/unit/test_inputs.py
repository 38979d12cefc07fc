"""Flow inputs (SPEC §5): declarations checked with the flow, given values coerced to each type,
defaults, validators, required, undeclared inputs; resolving is idempotent (it runs again inside
the workflow). Also labels (map or Kestra's list form) and flow output declarations."""

from __future__ import annotations

from typing import Any

import pytest

from temporal_flows.language.flow_outputs import OutputError, render_outputs
from temporal_flows.language.inputs import INPUT_TYPES, InputError, iso_duration, resolve_inputs
from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError

FILE_REF = {"$tflowRef": "r1/inputs/data/rows.csv", "size": 4, "kind": "file", "run": "r1", "sig": "ab"}
"""A FILE input's value: a stored file's reference, kept as is (only a worker checks its signature)."""

# type, extra declaration, a valid given value, its resolved form, an invalid given value, the default
# and its resolved form.
MATRIX: list[tuple[str, dict[str, Any], Any, Any, Any, Any, Any]] = [
    ("STRING", {}, "hello", "hello", ["a"], "dflt", "dflt"),
    ("INT", {}, "42", 42, "4.5", 7, 7),
    ("FLOAT", {}, "2.5", 2.5, "abc", 1, 1.0),
    ("BOOLEAN", {}, "TRUE", True, "yes", False, False),
    ("SELECT", {"values": ["A", "B"]}, "B", "B", "C", "A", "A"),
    ("MULTISELECT", {"values": ["A", "B", "C"]}, "A,C", ["A", "C"], '["A","D"]', ["B"], ["B"]),
    ("ARRAY", {"item_type": "INT"}, "[1, 2]", [1, 2], "1,x", "3,4", [3, 4]),
    ("JSON", {}, '{"a": [1, 2]}', {"a": [1, 2]}, "{nope", {"k": 1}, {"k": 1}),
    ("YAML", {}, "a: 1\nb: [x, y]", {"a": 1, "b": ["x", "y"]}, "a: [", "k: v", {"k": "v"}),
    ("DATETIME", {}, "2024-01-31T10:00:00+02:00", "2024-01-31T08:00:00Z", "31/01/2024", "2013-08-09T14:19:00Z", "2013-08-09T14:19:00Z"),
    ("DATE", {}, "2024-01-31", "2024-01-31", "2024-13-01", "2020-02-29", "2020-02-29"),
    ("TIME", {}, "10:15", "10:15:00", "25:00", "01:02:03", "01:02:03"),
    ("DURATION", {}, "1h30m", "PT1H30M", "soon", "PT10S", "PT10S"),
    ("URI", {}, "https://example.com/a.csv", "https://example.com/a.csv", "not a uri", "s3://b/k", "s3://b/k"),
    ("EMAIL", {}, "ann@example.com", "ann@example.com", "ann@", "bo@example.org", "bo@example.org"),
    ("SECRET", {}, "s3cr3t", "s3cr3t", {"a": 1}, "pw", "pw"),
    ("FILE", {}, FILE_REF, FILE_REF, "rows.csv", FILE_REF, FILE_REF),
]


def test_the_matrix_covers_every_type():
    assert sorted(row[0] for row in MATRIX) == sorted(INPUT_TYPES)


@pytest.mark.parametrize("row", MATRIX, ids=[row[0] for row in MATRIX])
def test_each_type_coerces_checks_and_defaults(row):
    type_name, extra, valid, resolved, invalid, default, resolved_default = row
    declared = [{"id": "x", "type": type_name, **extra}]

    assert resolve_inputs(declared, {"x": valid}) == {"x": resolved}
    assert resolve_inputs(declared, {"x": resolved}) == {"x": resolved}, "resolving again changes nothing"

    with pytest.raises(InputError) as raised:
        resolve_inputs(declared, {"x": invalid})
    [message] = raised.value.messages
    assert message.startswith(f"input `x` ({type_name}): got ") and "expected" in message
    if type_name == "SECRET":
        assert "a hidden value" in message

    with pytest.raises(InputError) as missing:
        resolve_inputs(declared, {})
    assert missing.value.messages == [f"input `x` ({type_name}) is required and was not given"]

    assert resolve_inputs([{**declared[0], "defaults": default}], {}) == {"x": resolved_default}
    assert resolve_inputs([{**declared[0], "required": False}], {}) == {"x": None}


@pytest.mark.parametrize(
    "extra, given, ok",
    [
        ({"type": "INT", "min": 10, "max": 20}, "10", True),
        ({"type": "INT", "min": 10, "max": 20}, "21", False),
        ({"type": "FLOAT", "min": 0.1, "max": 0.5}, "0.05", False),
        ({"type": "STRING", "validator": r"A\d+"}, "A12", True),
        ({"type": "STRING", "validator": r"A\d+"}, "A12b", False),
        ({"type": "STRING", "min_length": 2, "max_length": 3}, "abcd", False),
        ({"type": "DURATION", "min": "PT10S", "max": "PT20S"}, "15s", True),
        ({"type": "DURATION", "min": "PT10S", "max": "PT20S"}, "PT21S", False),
        ({"type": "DATE", "after": "2023-01-01", "before": "2023-12-31"}, "2023-01-01", False),
        ({"type": "DATETIME", "after": "2023-01-01T00:00:00Z"}, "2023-06-01T00:00:00Z", True),
        ({"type": "TIME", "after": "01:00:00", "before": "11:59:59"}, "12:00", False),
        ({"type": "SELECT", "values": ["A"], "allow_custom_value": True}, "Z", True),
    ],
)
def test_validators(extra, given, ok):
    declared = [{"id": "v", **extra}]
    if ok:
        resolve_inputs(declared, {"v": given})
    else:
        with pytest.raises(InputError, match=r"input `v`"):
            resolve_inputs(declared, {"v": given})


def test_every_problem_at_once_and_undeclared_inputs():
    declared = [{"id": "name", "type": "STRING"}, {"id": "count", "type": "INT"}]
    with pytest.raises(InputError) as raised:
        resolve_inputs(declared, {"count": "many", "nme": "x"})
    assert raised.value.messages == [
        "input `name` (STRING) is required and was not given",
        "input `count` (INT): got 'many', expected a whole number",
        "unknown input `nme` (did you mean `name`?): the flow declares `name`, `count`",
    ]
    with pytest.raises(InputError, match="the flow declares no inputs"):
        resolve_inputs([], {"x": "1"})


def test_typed_values_from_a_file_and_json_strings_stay_idempotent():
    declared = [{"id": "j", "type": "JSON"}, {"id": "s", "type": "STRING"}, {"id": "y", "type": "YAML"}]
    once = resolve_inputs(declared, {"j": '"text"', "s": 5, "y": "'123'"})
    assert once == {"j": '"text"', "s": "5", "y": "'123'"}
    assert resolve_inputs(declared, once) == once


def test_iso_durations_print_as_java_does():
    assert [iso_duration(s) for s in (0, 0.5, 90, 3600, 86400 + 61)] == ["PT0S", "PT0.5S", "PT1M30S", "PT1H", "PT24H1M1S"]


FLOW = """\
id: f
namespace: n
labels:
  - key: team
    value: data
  - key: tier
    value: 1
inputs:
  - id: day
    type: DATE
    after: 2023-01-01
  - name: nums
    type: ARRAY
    itemType: INT
  - id: level
    type: ENUM
    values: [LOW, HIGH]
    defaults: LOW
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.day }}"
outputs:
  - id: o
    type: INT
    value: "{{ outputs.t.value | length }}"
"""


def test_declarations_normalize_kestra_forms():
    flow = load_flow_text(FLOW, "f.yaml").flow
    assert flow.labels == {"team": "data", "tier": "1"}
    assert flow.inputs == [
        {"id": "day", "type": "DATE", "after": "2023-01-01"},
        {"id": "nums", "type": "ARRAY", "item_type": "INT"},
        {"id": "level", "type": "SELECT", "values": ["LOW", "HIGH"], "defaults": "LOW"},
    ]
    assert flow.outputs == [{"id": "o", "type": "INT", "value": "{{ outputs.t.value | length }}"}]


BAD_DECLARATIONS = """\
id: f
namespace: n
labels: [oops]
inputs:
  - id: a
    type: STRNG
  - id: b
    type: INT
    min: 5
    defaults: 2
    minLength: 3
  - id: c
    type: SELECT
  - id: a
    type: FILE
    defaults: rows.csv
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
outputs:
  - id: o
    type: STRING
    value: "{{ outputs.tt.value }}"
  - id: p
    value: x
"""


def test_bad_declarations_are_problems_at_their_place():
    with pytest.raises(FlowError) as raised:
        load_flow_text(BAD_DECLARATIONS, "f.yaml")
    assert [str(problem) for problem in raised.value.problems] == [
        "f.yaml:3:10: `labels` must be a mapping of name → text, or a list of `{key, value}`; this entry is not a `{key, value}`",
        "f.yaml:6:11: input `a`: unknown input type `STRNG` (did you mean `STRING`?) (expected one of "
        + ", ".join(INPUT_TYPES) + ")",
        "f.yaml:10:15: input `b` (INT): `defaults` must be a value at least 5, got 2",
        "f.yaml:11:5: input `b` (INT): unknown property `minLength`",
        "f.yaml:12:5: input `c` (SELECT) is missing `values`",
        "f.yaml:14:9: duplicate input id `a`",
        "f.yaml:16:15: input `a` (FILE): `defaults` must be a file, given as @path (tflow run --input NAME=@path), got 'rows.csv'",
        "f.yaml:24:12: output `o`, `value`: unknown task `tt` in `{{ outputs.tt.value }}` (did you mean `t`?)",
        "f.yaml:25:5: output `p` is missing `type`",
    ]


def test_outputs_render_coerce_and_fail_naming_the_output():
    declared = [{"id": "n", "type": "INT", "value": "{{ outputs.t.value }}"}, {"id": "s", "type": "STRING", "value": "{{ outputs.t }}"}]
    assert render_outputs(declared, {"outputs": {"t": {"value": "7"}}}) == {"n": 7, "s": '{"value":"7"}'}
    with pytest.raises(OutputError, match=r"output `n`: rendered 'x', expected a whole number"):
        render_outputs(declared, {"outputs": {"t": {"value": "x"}}})
    with pytest.raises(OutputError, match=r"output `n`: cannot render `\{\{ outputs.t.value \}\}`"):
        render_outputs(declared, {"outputs": {}})


@pytest.mark.parametrize(
    "declaration, given, expected",
    [
        ({"type": "INT", "max": 10}, "1" + "0" * 400, "expected a value at most 10"),
        ({"type": "INT", "max": 2**53}, 2**53 + 1, f"expected a value at most {2**53}"),  # exact, not as floats
        ({"type": "INT"}, "1" * 5000, "expected a whole number"),
        ({"type": "FLOAT"}, 10**400, "expected a number"),
        ({"type": "DURATION"}, float("inf"), "expected an ISO-8601 duration"),
        ({"type": "DURATION"}, "9" * 400 + "S", "expected an ISO-8601 duration"),
        ({"type": "DATETIME"}, "9999-12-31T23:59:59-05:00", "expected a date-time that stays within the years 1 to 9999 in UTC"),
        ({"type": "JSON"}, "[" * 50_000 + "]" * 50_000,
         "expected JSON text within the reading bounds (JSON nested more than 100 levels deep"),
        ({"type": "YAML"}, "[" * 101 + "]" * 101,
         "expected YAML text within the reading bounds (mappings and lists nested more than 100 levels deep"),
    ],
    ids=["int-past-max", "int-exact-max", "int-digits", "float-range", "duration-inf", "duration-digits", "datetime-utc",
         "json-depth", "yaml-depth"],
)
def test_values_past_a_range_or_a_nesting_bound_are_input_errors_not_crashes(declaration, given, expected):
    """Resolving runs inside the workflow too: past a range it must fail with InputError, never raise
    OverflowError or RecursionError (a workflow task failure that would leave the run stuck)."""
    with pytest.raises(InputError) as raised:
        resolve_inputs([{"id": "v", **declaration}], {"v": given})
    [message] = raised.value.messages
    assert expected in message, message


def test_big_whole_numbers_resolve_exactly_within_their_bounds():
    huge = "1" + "0" * 400
    assert resolve_inputs([{"id": "v", "type": "INT", "min": 1}], {"v": huge}) == {"v": 10**400}
    assert resolve_inputs([{"id": "v", "type": "INT", "max": 2**53}], {"v": 2**53}) == {"v": 2**53}


def test_a_declared_bound_out_of_range_is_a_problem_at_its_place():
    text = "id: f\nnamespace: n\ninputs:\n  - id: d\n    type: DURATION\n    min: .inf\n  - id: i\n    type: INT\n    max: '" + "1" * 5000 + "'\ntasks:\n  - id: t\n    type: return\n    format: x\n"
    with pytest.raises(FlowError) as raised:
        load_flow_text(text, "f.yaml")
    assert [str(problem) for problem in raised.value.problems] == [
        "f.yaml:6:10: input `d` (DURATION): `min` must be an ISO-8601 duration like PT5M (or 5m, 30s, 1h30m), got inf",
        "f.yaml:9:10: input `i` (INT): `max` must be a whole number, got '" + "1" * 76 + "...",
    ]


def test_a_file_input_takes_only_a_stored_files_reference():
    declared = [{"id": "data", "type": "FILE"}]
    value = {"$tflowRef": "r1/t/outputs/0-v.json", "size": 2, "kind": "json"}  # a stored value, not a file
    for given in ("@rows.csv", value, ["a"]):
        with pytest.raises(InputError) as raised:
            resolve_inputs(declared, {"data": given})
        assert raised.value.messages[0].endswith("expected a file, given as @path (tflow run --input NAME=@path)")
    with pytest.raises(FlowError, match="ARRAY.*itemType"):
        load_flow_text("id: f\nnamespace: n\ninputs:\n  - id: a\n    type: ARRAY\n    itemType: FILE\n"
                       "tasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n", "f.yaml")
