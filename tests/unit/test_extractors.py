"""Output extractors and the `http` task's declarations, checked without a server: what an
extractor finds or why it fails (named, with an excerpt), what loading refuses (exit 2 material,
with line and field), and how `allowed_status`/`options` become the activity's request."""

from __future__ import annotations

import jsonschema
import pytest

from activities.extracting import TextCapture, apply_extractors
from temporal_flows.expressions.extractors import ExtractionError, Extractor, extract, extractor_problem
from temporal_flows.language.loader import load_flow_text
from temporal_flows.language.schema import flow_schema
from temporal_flows.model.problems import FlowError
from temporal_flows.tasks.runnable.activity import RunIdentity
from temporal_flows.tasks.runnable.http import build, status_ranges
from temporalio.exceptions import ApplicationError

BODY = '{"access_token": "t0k", "items": [{"id": 1}, {"id": 2}]}'


def test_each_extractor_type_reads_the_text():
    found = extract(
        [Extractor("whole", "json"), Extractor("token", "jmespath", "access_token"),
         Extractor("ids", "jmespath", "items[*].id"), Extractor("raw", "text")],
        BODY, "response body")
    assert found == {"whole": {"access_token": "t0k", "items": [{"id": 1}, {"id": 2}]}, "token": "t0k",
                     "ids": [1, 2], "raw": BODY}


@pytest.mark.parametrize(("extractor", "text", "expected"), [
    (Extractor("email", "jmespath", "contact.email"), BODY, ["`email`", "contact.email", "matched nothing", "access_token"]),
    (Extractor("data", "json"), "Traceback: boom", ["`data`", "not JSON", "Traceback: boom"]),
    (Extractor("data", "jmespath", "a"), "", ["`data`", "not JSON", "(empty)"]),
])
def test_an_extractor_that_does_not_match_names_itself_and_shows_the_text(extractor, text, expected):
    with pytest.raises(ExtractionError) as failure:
        extract([extractor], text, "stdout")
    assert all(part in str(failure.value) for part in expected), str(failure.value)


def test_the_excerpt_of_a_long_text_is_cut():
    with pytest.raises(ExtractionError) as failure:
        extract([Extractor("x", "json")], "x" * 10_000, "stdout")
    assert len(str(failure.value)) < 600 and "10000 chars" in str(failure.value)


def test_on_a_worker_a_failing_extractor_is_a_final_task_failure():
    with pytest.raises(ApplicationError) as failure:
        apply_extractors([{"name": "n", "type": "jmespath", "value": "missing"}], BODY, "response body")
    assert failure.value.type == "ExtractorFailed" and failure.value.non_retryable


def test_stdout_capture_keeps_unconsumed_lines_up_to_its_limit():
    capture = TextCapture("stdout", limit=20)
    handle = capture.watching(lambda line: line.startswith("::"))
    for line in ('::{"outputs": {}}::', '{"a": 1}'):
        handle(line)
    assert capture.text() == '{"a": 1}'
    handle("y" * 30)
    with pytest.raises(ApplicationError, match="at most 0 KiB of stdout"):
        capture.text()


@pytest.mark.parametrize(("declared", "problem"), [
    ([{"name": "a", "type": "jmespath"}], "needs `value`"),
    ([{"name": "a", "type": "jmespath", "value": "a.[b"}], "not a JMESPath expression"),
    ([{"name": "a", "type": "xml"}], "must be one of json, jmespath, text"),
    ([{"name": "a", "type": "json"}, {"name": "a", "type": "text"}], "declared twice"),
    ([{"type": "json"}], "needs a `name`"),
    ([{"name": "a", "type": "text", "value": "x"}], "jmespath only"),
    ({"name": "a"}, "must be a list"),
])
def test_bad_extractor_declarations_are_explained(declared, problem):
    assert problem in (extractor_problem(declared) or "")


HTTP_FLOW = """\
id: f
namespace: t
tasks:
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: http://example.test/x
{extra}
"""


@pytest.mark.parametrize(("extra", "line", "expected"), [
    ("    allowedStatus: [200, '2xy']", 7, "'2xy' is not a status"),
    ("    options: {proxy: x}", 7, "option `proxy` is not supported"),
    ("    options: {auth: {type: DIGEST}}", 7, "{type: BASIC, username, password} or {type: BEARER, token}"),
    ("    output: [{name: t, type: jmespath, value: 'a['}]", 7, "extractor `t`"),
])
def test_loading_refuses_bad_http_declarations_naming_line_and_field(extra, line, expected):
    with pytest.raises(FlowError) as failure:
        load_flow_text(HTTP_FLOW.format(extra=extra), "flow.yaml")
    problem = failure.value.problems[0]
    assert problem.line == line and expected in problem.message, str(failure.value)


def test_the_schema_knows_output_extractors_on_runnables():
    schema = flow_schema()
    good = {"id": "f", "namespace": "t", "tasks": [
        {"id": "c", "type": "commands", "commands": ["echo"], "output": [{"name": "x", "type": "json"}]},
        {"id": "h", "type": "http", "uri": "http://x", "output": [{"name": "y", "type": "jmespath", "value": "a"}]},
    ]}
    jsonschema.validate(good, schema)
    bad = {**good, "tasks": [{"id": "h", "type": "http", "uri": "http://x", "output": [{"name": "y", "type": "jmespath"}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.mark.parametrize(("value", "ranges"), [
    (404, [[404, 404]]),
    ("2xx", [[200, 299]]),
    (["200-204", "3xx", 418], [[200, 204], [300, 399], [418, 418]]),
])
def test_allowed_status_forms(value, ranges):
    assert status_ranges(value) == ranges


def test_kestra_options_become_the_request():
    task = load_flow_text(HTTP_FLOW.format(extra="    method: POST"), "flow.yaml").flow.tasks[0]
    props = {"uri": "http://example.test/x", "method": "POST", "body": {"a": 1},
             "options": {"allowedResponseCodes": [201], "followRedirects": False, "connectTimeout": "PT2S",
                         "auth": {"type": "BEARER", "token": "abc"}},
             "output": [{"name": "id", "type": "jmespath", "value": "id"}]}
    request = build(task, props, RunIdentity("run", "tr")).request
    assert request.method == "POST" and request.send_json and request.json_body == {"a": 1}
    assert request.allowed_status == [[201, 201]] and request.follow_redirects is False
    assert request.connect_timeout_s == 2.0 and request.auth == {"type": "bearer", "token": "abc"}
    assert request.output == [{"name": "id", "type": "jmespath", "value": "id"}]
    allow_all = build(task, {"uri": "u", "options": {"allowFailed": True}}, RunIdentity("run", "tr")).request
    assert allow_all.allowed_status == [[100, 599]]
