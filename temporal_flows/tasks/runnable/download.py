"""`download`: one HTTP request whose response body is streamed into the run's storage (Kestra's
`core.http.Download`), as an activity (`activities.download`).

Outputs: `uri` (the stored file's reference: later templates read it as text, `inputFiles` copy it,
exactly like an `outputFiles` match), `code`, `headers` (lower-case name → list of values),
`length` (bytes). A status outside 2xx fails it (`HttpStatus`), an empty body too unless
`failOnEmptyResponse: false` (`EmptyResponse`), a body over `maxSize` (default 1 GiB) too
(`ResponseTooLarge`, nothing kept).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from activities.api import DOWNLOAD_ACTIVITY, DOWNLOAD_MAX_SIZE, DownloadRequest, DownloadResult
from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.model.keys import camel_case, snake_case
from temporal_flows.tasks.base import PropertySpec, TaskType, runnable_properties
from temporal_flows.tasks.runnable.activity import ActivityCall, RunIdentity, RunnableOutcome, RunnableType
from temporal_flows.tasks.runnable.http import METHODS, OPTION_KINDS, _auth, _option_value_problem, _seconds, _text

DOWNLOAD_OPTIONS = {name: kind for name, kind in OPTION_KINDS.items()
                    if name not in ("allow_failed", "allowed_response_codes", "max_content_length")}
"""Kestra's `options` a download honours (the status is always 2xx; `maxSize` bounds the body)."""


def _options_problem(value: Any) -> str | None:
    for key, item in value.items():
        kind = DOWNLOAD_OPTIONS.get(snake_case(str(key)))
        if kind is None:
            known = ", ".join(sorted(camel_case(name) for name in DOWNLOAD_OPTIONS))
            return f"option `{key}` is not supported by a download (known: {known})"
        problem = _option_value_problem(kind, item)
        if problem:
            return f"option `{key}` {problem}"
    return None


def build(task: Task, props: dict[str, Any], identity: RunIdentity) -> ActivityCall:
    options = {snake_case(str(key)): value for key, value in (props.get("options") or {}).items()}
    body, send_json, json_body = props.get("body"), False, None
    if body is not None and not isinstance(body, str):
        send_json, json_body, body = True, body, None  # a structured `body` is sent as JSON
    form = props.get("form")
    request = DownloadRequest(
        run_id=identity.run_id,
        task_id=task.id,
        task_run_id=identity.task_run_id,
        root_run_id=identity.root_run_id,
        uri=str(props.get("uri")),
        method=str(props.get("method") or "GET").upper(),
        headers={str(name): _text(value) for name, value in (props.get("headers") or {}).items()},
        body=body,
        send_json=send_json,
        json_body=json_body,
        form={str(name): _text(value) for name, value in form.items()} if form else None,
        content_type=props.get("content_type"),
        follow_redirects=bool(options.get("follow_redirects", True)),
        auth=_auth(options),
        connect_timeout_s=_seconds(options.get("connect_timeout")),
        read_timeout_s=_seconds(options.get("read_timeout") or options.get("read_idle_timeout")),
        timeout_s=task.timeout_s,
        max_size=int(props.get("max_size") or DOWNLOAD_MAX_SIZE),
        fail_on_empty=props.get("fail_on_empty_response", True) is not False,
    )
    return ActivityCall(DOWNLOAD_ACTIVITY, request, DownloadResult)


def read(result: DownloadResult | dict[str, Any]) -> RunnableOutcome:
    data = result if isinstance(result, dict) else asdict(result)
    outputs = {
        "uri": data.get("file"),
        "code": data.get("code"),
        "headers": data.get("headers") or {},
        "length": data.get("length"),
    }
    return RunnableOutcome(outputs, [])


TYPE = TaskType(
    "download",
    TaskKind.RUNNABLE,
    ("io.kestra.plugin.core.http.Download", "io.kestra.plugin.fs.http.Download"),
    runnable_properties(
        uri=PropertySpec("string", required=True),
        method=PropertySpec("choice", choices=METHODS, default="GET"),
        headers=PropertySpec("mapping"),
        body=PropertySpec("any", description="text, or a mapping/list sent as JSON"),
        form=PropertySpec("mapping", aliases=("form_data",), description="url-encoded, or multipart with contentType multipart/form-data"),
        content_type=PropertySpec("string"),
        fail_on_empty_response=PropertySpec("boolean", default=True, dynamic=True,
                                            description="an empty body fails the task (EmptyResponse)"),
        max_size=PropertySpec("integer", minimum=1, dynamic=True,
                              description=f"bytes the body may hold (default {DOWNLOAD_MAX_SIZE}, 1 GiB); past them ResponseTooLarge"),
        options=PropertySpec("mapping", check=_options_problem,
                             description="Kestra's: followRedirects, connectTimeout, readTimeout, auth {type: BASIC|BEARER}, "
                             "basicAuthUser/Password"),
    ),
    "an HTTP download into the run's storage",
    runnable=RunnableType(build, read),
)
