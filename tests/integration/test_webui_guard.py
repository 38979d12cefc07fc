"""The web view serves its user only (SPEC §10), on a real aiohttp server of it in front of the
session's Temporal server and a worker: a cross-origin "simple" POST (text/plain, as any web page
can send) or one without the page's Origin or token is refused and starts no workflow; a request
whose Host is not the address served (DNS rebinding) is refused, GET and POST alike; SECRET input
defaults, SECRET inputs given to a run and SECRET flow outputs never reach the page, though the run
itself used them; the page's own JSON POST with its token still starts a run."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from temporalio.client import Client

from client.run_list import recent_runs
from client.runs import wait_result
from client.webui.guard import TOKEN_HEADER
from client.webui.masking import MASK
from client.webui.server import WebContext, WebServer, serve
from temporal_flows.language.loader import load_flow
from tests.support import write_flow

DEFAULT_SECRET = "default-secret-9f2c"
GIVEN_SECRET = "given-secret-71ad"

FLOW = """\
id: {flow_id}
namespace: it.webui
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: token
    type: SECRET
    defaults: {default_secret}
outputs:
  - id: said
    type: SECRET
    value: "{{{{ outputs.say.value }}}}"
  - id: who
    type: STRING
    value: "{{{{ inputs.name }}}}"
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "token {{{{ inputs.token }}}} for {{{{ inputs.name }}}}"
  - id: shout
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "shell sees {{{{ inputs.token }}}}"
"""


@pytest.fixture
def flow_id() -> str:
    return f"guard-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture
async def webview(tmp_path: Path, client: Client, worker: str, flow_id: str) -> AsyncIterator[WebServer]:
    """The web view of the test's flow on a free port, its runs on the test's worker."""
    path = write_flow(tmp_path, FLOW.format(flow_id=flow_id, default_secret=DEFAULT_SECRET), "guard.yaml")
    context = WebContext(client, client.namespace, worker, None, load_flow(path))
    server = await serve(context, "127.0.0.1", 0, report=lambda refusal: None)
    try:
        yield server
    finally:
        await server.cleanup()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def page_token(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(base) as response:
        assert response.status == 200
        page = await response.text()
    return re.search(r'<meta name="tflow-token" content="([^"]+)">', page).group(1)


async def runs_of(client: Client, flow_id: str) -> list[str]:
    return sorted(row["run_id"] for row in await recent_runs(client, 20, flow_id))


async def started_only(client: Client, flow_id: str, expected: list[str]) -> None:
    """Once the runs the test started are visible, no other run of the flow is: a refused request
    made before them would have started one earlier."""
    deadline = time.monotonic() + 10
    while True:
        found = await runs_of(client, flow_id)
        if set(expected) <= set(found) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert found == sorted(expected), found


async def test_cross_origin_and_tokenless_posts_start_nothing(webview: WebServer, http: aiohttp.ClientSession,
                                                              client: Client, flow_id: str) -> None:
    base = webview.url
    body = json.dumps({"inputs": {"name": "attacker"}})
    origin = base.rstrip("/")
    refused = [
        ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403, "another site"),
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, 403, "another site"),
        ({"Origin": "null", "Content-Type": "application/json"}, 403, "another site"),
        ({"Content-Type": "application/json"}, 403, TOKEN_HEADER),  # no Origin, no token
        ({TOKEN_HEADER: "guessed", "Content-Type": "application/json"}, 403, TOKEN_HEADER),
        ({"Origin": origin, "Content-Type": "text/plain"}, 415, "application/json"),
        ({"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ]
    for headers, status, reason in refused:
        async with http.post(f"{base}api/runs", data=body, headers=headers) as response:
            assert response.status == status, headers
            problems = (await response.json())["problems"]
            assert reason in problems[0], (headers, problems)
            assert response.headers["X-Frame-Options"] == "DENY"
            assert "Access-Control-Allow-Origin" not in response.headers
    assert webview.guard.refused == len(refused)
    assert [refusal.status for refusal in webview.guard.refusals] == [status for _, status, _ in refused]

    token = await page_token(http, base)
    started = []
    for headers in ({TOKEN_HEADER: token}, {"Origin": origin}, {"Origin": origin, TOKEN_HEADER: token}):
        async with http.post(f"{base}api/runs", data=body, headers={**headers, "Content-Type": "application/json"}) as response:
            assert response.status == 200, await response.text()
            started.append((await response.json())["run_id"])
    result = await wait_result(client.get_workflow_handle(started[0]))
    assert result["state"] == "SUCCESS" and result["outputs"]["who"] == "attacker"
    await started_only(client, flow_id, started)


async def test_a_foreign_host_is_refused_get_and_post(webview: WebServer, http: aiohttp.ClientSession,
                                                       client: Client, flow_id: str) -> None:
    """DNS rebinding: the attacker's page is same-origin with its own name, which now points here."""
    base = webview.url
    port = base.rstrip("/").rsplit(":", 1)[1]
    token = await page_token(http, base)
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{int(port) + 1}", f"localhost.evil.example:{port}", ""):
        for path in ("", "runs/x", "api/context", "api/runs", "static/app.js", "api/runs/x/events", "api/runs/x/logs"):
            async with http.get(f"{base}{path}", headers={"Host": host}) as response:
                assert response.status == 403, (host, path)
                assert "Host" in (await response.json())["problems"][0]
        headers = {"Host": host, "Origin": f"http://{host}", TOKEN_HEADER: token, "Content-Type": "application/json"}
        async with http.post(f"{base}api/runs", data='{"inputs": {}}', headers=headers) as response:
            assert response.status == 403, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        async with http.get(f"{base}api/context", headers={"Host": host}) as response:
            assert response.status == 200, host
    async with http.post(f"{base}api/runs", data='{"inputs": {}}',
                         headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}",
                                  "Content-Type": "application/json"}) as response:
        assert response.status == 200
        run_id = (await response.json())["run_id"]
    await started_only(client, flow_id, [run_id])


async def test_secret_values_never_reach_the_page(webview: WebServer, http: aiohttp.ClientSession, client: Client) -> None:
    base = webview.url
    async with http.get(f"{base}api/context") as response:
        text = await response.text()
    assert DEFAULT_SECRET not in text
    secret_input = [declared for declared in json.loads(text)["flow"]["inputs"] if declared["id"] == "token"][0]
    assert secret_input["default_hidden"] is True and "defaults" not in secret_input
    token = await page_token(http, base)

    for given, secret in (({"token": GIVEN_SECRET, "name": "ann"}, GIVEN_SECRET), ({"token": "", "name": "bob"}, DEFAULT_SECRET)):
        async with http.post(f"{base}api/runs", json={"inputs": given}, headers={TOKEN_HEADER: token}) as response:
            run_id = (await response.json())["run_id"]
        used = await wait_result(client.get_workflow_handle(run_id))  # what the run saw, outside the page
        assert used["outputs"]["said"] == f"token {secret} for {given['name']}"

        for path in (f"api/runs/{run_id}", f"api/runs/{run_id}/flow", f"api/runs/{run_id}/logs", f"api/runs/{run_id}/events"):
            async with http.get(f"{base}{path}") as response:
                assert response.status == 200, path
                text = await response.text()
            assert secret not in text and DEFAULT_SECRET not in text, (path, text)
        async with http.get(f"{base}api/runs/{run_id}") as response:
            shown = await response.json()
        assert shown["outputs"] == {"said": MASK, "who": given["name"]}
        say = [task_run for task_run in shown["task_runs"] if task_run["task_id"] == "say"][0]
        assert say["outputs"] == {"value": f"token {MASK} for {given['name']}"}
        async with http.get(f"{base}api/runs/{run_id}/logs?task=shout") as response:
            lines = [line["message"] for attempt in await response.json() for line in attempt["lines"]]
        assert f"shell sees {MASK}" in lines, lines

    # A page opened on a run (not the flow that started it) reads the secrets from the run's history.
    fresh = WebContext(client, client.namespace, "unused", None, None, run_id=run_id)
    other = await serve(fresh, "127.0.0.1", 0)
    try:
        async with http.get(f"{other.url}api/runs/{run_id}") as response:
            text = await response.text()
        assert DEFAULT_SECRET not in text and f"token {MASK} for bob" in text
    finally:
        await other.cleanup()
