"""The `download` task type as the language and the engine see it: its Kestra names, a missing `uri`
or an unsupported option named with its line, `maxSize` and `failOnEmptyResponse` carried to the
activity's request, and the schema naming its properties."""

from __future__ import annotations

import pytest

from activities.api import DOWNLOAD_ACTIVITY, DOWNLOAD_MAX_SIZE
from temporal_flows.language.loader import load_flow_text
from temporal_flows.language.schema import flow_schema
from temporal_flows.model.problems import FlowError
from temporal_flows.tasks import resolve_type
from temporal_flows.tasks.runnable.activity import RunIdentity
from temporal_flows.tasks.runnable.download import build

FLOW = """id: dl
namespace: tests
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: hi
  - id: fetch
    type: io.kestra.plugin.core.http.Download
{extra}
"""


@pytest.mark.parametrize("name", ["download", "io.kestra.plugin.core.http.Download", "io.kestra.plugin.fs.http.Download"])
def test_kestra_names_resolve_to_download(name: str):
    found = resolve_type(name)
    assert found is not None and found.name == "download"


@pytest.mark.parametrize("extra, line, expected", [
    ("    method: GET", 7, "missing `uri`"),
    ("    uri: http://x/y\n    options: {allowFailed: true}", 10, "allowFailed"),
    ("    uri: http://x/y\n    maxSize: lots", 10, "maxSize"),
])
def test_a_bad_download_names_its_line_and_field(extra: str, line: int, expected: str):
    with pytest.raises(FlowError) as failure:
        load_flow_text(FLOW.format(extra=extra), "flow.yaml")
    problem = failure.value.problems[0]
    assert problem.file == "flow.yaml" and problem.line == line and expected in problem.message, str(failure.value)


def test_the_request_carries_max_size_and_fail_on_empty():
    flow = load_flow_text(FLOW.format(extra="    uri: http://x/y\n    maxSize: 1000\n    failOnEmptyResponse: false\n"
                                             "    options: {followRedirects: false, connectTimeout: PT2S}"), "flow.yaml")
    task = flow.flow.tasks[1]
    call = build(task, dict(task.properties), RunIdentity("run", "tr"))
    assert call.activity == DOWNLOAD_ACTIVITY
    assert call.request.max_size == 1000 and call.request.fail_on_empty is False
    assert call.request.follow_redirects is False and call.request.connect_timeout_s == 2.0
    default = build(task, {"uri": "http://x/y"}, RunIdentity("run", "tr")).request
    assert default.max_size == DOWNLOAD_MAX_SIZE and default.fail_on_empty is True and default.method == "GET"


def test_the_schema_knows_download_properties():
    text = str(flow_schema())
    assert "io.kestra.plugin.core.http.Download" in text and "failOnEmptyResponse" in text and "maxSize" in text
