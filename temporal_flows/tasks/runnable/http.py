"""`http`: one HTTP request on a worker (Kestra's `core.http.Request`, the `parallel` spec's
`url`/`request` task), as an activity (SPEC §4).

Outputs: `code` and `status` (the status code, Kestra's and the spec's name), `headers` (lower-case
name → list of values, Kestra's form), `body` (parsed JSON when the response says JSON, else the
text), `uri` (after redirects), and the output extractors' values. A status outside
`allowed_status` (default 2xx; Kestra's `options.allowFailed`/`allowedResponseCodes` too) fails it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

from activities.api import HTTP_ACTIVITY, HttpRequest, HttpResult
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.flow import Task, TaskKind
from temporal_flows.model.keys import camel_case, snake_case
from temporal_flows.tasks.base import PropertySpec, TaskType, runnable_properties
from temporal_flows.tasks.runnable.activity import ActivityCall, RunIdentity, RunnableOutcome, RunnableType, extractors_of, with_extracted

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
OPTION_KINDS = {
    "allow_failed": "boolean",
    "allowed_response_codes": "codes",
    "follow_redirects": "boolean",
    "connect_timeout": "duration",
    "read_timeout": "duration",
    "read_idle_timeout": "duration",
    "auth": "auth",
    "basic_auth_user": "string",
    "basic_auth_password": "string",
    "max_content_length": "integer",
}
"""Kestra's `options` this task honours (camelCase or snake_case); others are refused when loading."""
_STATUS_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_STATUS_RANGE = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")


def status_ranges(value: Any) -> list[list[int]]:
    """`allowed_status` as inclusive ranges: a code (`404`), a class (`"2xx"`), a range
    (`"200-299"`), or a list of them. Raises ValueError saying what is accepted."""
    items = value if isinstance(value, list) else [value]
    ranges: list[list[int]] = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            ranges.append([item, item])
        elif isinstance(item, str) and text.isdigit() and 100 <= int(text) <= 599:
            ranges.append([int(text), int(text)])
        elif isinstance(item, str) and (match := _STATUS_CLASS.match(text)):
            low = int(match.group(1)) * 100
            ranges.append([low, low + 99])
        elif isinstance(item, str) and (match := _STATUS_RANGE.match(text)) and int(match.group(1)) <= int(match.group(2)):
            ranges.append([int(match.group(1)), int(match.group(2))])
        else:
            raise ValueError(f"{item!r} is not a status: expected a code (404), a class (\"2xx\") or a range (\"200-299\"), or a list of them")
    return ranges


def _status_problem(value: Any) -> str | None:
    try:
        status_ranges(value)
    except ValueError as error:
        return str(error)
    return None


def _options_problem(value: Any) -> str | None:
    for key, item in value.items():
        kind = OPTION_KINDS.get(snake_case(str(key)))
        if kind is None:
            known = ", ".join(camel_case(name) for name in sorted(OPTION_KINDS))
            return f"option `{key}` is not supported (known: {known})"
        problem = _option_value_problem(kind, item)
        if problem:
            return f"option `{key}` {problem}"
    return None


def _option_value_problem(kind: str, item: Any) -> str | None:
    if isinstance(item, str) and "{{" in item:
        return None  # rendered at task start
    if kind == "boolean" and not isinstance(item, bool):
        return "must be true or false"
    if kind == "integer" and (not isinstance(item, int) or isinstance(item, bool) or item < 1):
        return "must be a whole number ≥ 1"
    if kind == "string" and not isinstance(item, str):
        return "must be a string"
    if kind == "codes":
        return _status_problem(item)
    if kind == "duration":
        try:
            parse_duration(item)
        except ValueError:
            return "must be a duration (PT5S, 5s, 1m)"
    if kind == "auth":
        kind_of = str(item.get("type", "")).upper() if isinstance(item, dict) else ""
        if kind_of == "BASIC" and set(item) <= {"type", "username", "password"}:
            return None
        if kind_of == "BEARER" and set(item) <= {"type", "token"}:
            return None
        return "must be {type: BASIC, username, password} or {type: BEARER, token}"
    return None


def build(task: Task, props: dict[str, Any], identity: RunIdentity) -> ActivityCall:
    props = {**props, **{snake_case(key): value for key, value in (props.get("request") or {}).items()}}
    options = {snake_case(str(key)): value for key, value in (props.get("options") or {}).items()}
    body, send_json, json_body = props.get("body"), "json" in props, props.get("json")
    if body is not None and not isinstance(body, str):
        send_json, json_body, body = True, body, None  # a structured `body` is sent as JSON
    request = HttpRequest(
        run_id=identity.run_id,
        task_id=task.id,
        task_run_id=identity.task_run_id,
        root_run_id=identity.root_run_id,
        uri=str(props.get("uri") or props.get("url")),
        method=str(props.get("method") or "GET").upper(),
        headers={str(name): _text(value) for name, value in (props.get("headers") or {}).items()},
        body=body,
        send_json=send_json,
        json_body=json_body,
        form={str(name): _text(value) for name, value in props["form"].items()} if props.get("form") else None,
        content_type=props.get("content_type"),
        allowed_status=_allowed(props, options),
        follow_redirects=bool(options.get("follow_redirects", True)),
        auth=_auth(options),
        connect_timeout_s=_seconds(options.get("connect_timeout")),
        read_timeout_s=_seconds(options.get("read_timeout") or options.get("read_idle_timeout")),
        timeout_s=task.timeout_s,
        max_body_bytes=options.get("max_content_length"),
        output=extractors_of(props),
    )
    return ActivityCall(HTTP_ACTIVITY, request, HttpResult)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _allowed(props: dict[str, Any], options: dict[str, Any]) -> list[list[int]]:
    if options.get("allow_failed"):
        return [[100, 599]]
    declared = props.get("allowed_status", options.get("allowed_response_codes"))
    return status_ranges(declared) if declared is not None else [[200, 299]]


def _auth(options: dict[str, Any]) -> dict[str, str] | None:
    auth = options.get("auth")
    if isinstance(auth, dict) and str(auth.get("type", "")).upper() == "BEARER":
        return {"type": "bearer", "token": str(auth.get("token", ""))}
    if isinstance(auth, dict):
        return {"type": "basic", "username": str(auth.get("username", "")), "password": str(auth.get("password", ""))}
    if options.get("basic_auth_user") is not None:
        return {"type": "basic", "username": str(options["basic_auth_user"]), "password": str(options.get("basic_auth_password") or "")}
    return None


def _seconds(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def read(result: HttpResult | dict[str, Any]) -> RunnableOutcome:
    data = result if isinstance(result, dict) else asdict(result)
    outputs = {
        "code": data.get("status"),
        "status": data.get("status"),
        "headers": data.get("headers") or {},
        "body": data.get("body"),
        "uri": data.get("uri"),
    }
    return RunnableOutcome(with_extracted(outputs, data), [])


TYPE = TaskType(
    "http",
    TaskKind.RUNNABLE,
    ("io.kestra.plugin.core.http.Request", "io.kestra.core.tasks.http.Request", "io.kestra.plugin.fs.http.Request"),
    runnable_properties(
        uri=PropertySpec("string", aliases=("url",), required=True),
        method=PropertySpec("choice", choices=METHODS, default="GET"),
        headers=PropertySpec("mapping"),
        body=PropertySpec("any", description="text, or a mapping/list sent as JSON"),
        json=PropertySpec("any", description="sent as JSON"),
        form=PropertySpec("mapping", aliases=("form_data",), description="url-encoded, or multipart with contentType multipart/form-data"),
        content_type=PropertySpec("string"),
        allowed_status=PropertySpec("any", check=_status_problem,
                                    description="statuses that succeed: codes, classes (\"2xx\"), ranges (\"200-299\"); default 2xx"),
        options=PropertySpec("mapping", check=_options_problem,
                             description="Kestra's: allowFailed, allowedResponseCodes, followRedirects, connectTimeout, "
                             "readTimeout, auth {type: BASIC|BEARER}, basicAuthUser/Password, maxContentLength"),
        request=PropertySpec("mapping", description="the request's fields (the parallel spec's form)"),
    ),
    "an HTTP request",
    runnable=RunnableType(build, read),
)
