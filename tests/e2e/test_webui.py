"""`tflow webui` in a real browser: headless Chromium opens the page of a flow served by a `tflow
webui` process against the session's dev server, starts a run from the form (an in-process worker
runs it), sees a step running then succeeded, and clicks it to see its output and log; a
screenshot is written to tests/artifacts/webui.png (the README's docs/webui.png is a copy of one).
A page of another site cannot start a run through the browser, nor read the view through a DNS
name rebound to 127.0.0.1, while the view's own page still starts one (SPEC §10).
Skipped, saying why, where no Chromium is installed (`make test` installs it where apt can)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from temporalio.client import Client

from client.devserver import free_port
from client.run_list import recent_runs
from client.runs import wait_result
from tests.browser import Chromium, find_chromium
from tests.support import REPO, cli_env, run_flow, tflow, write_flow

ARTIFACTS = REPO / "tests" / "artifacts"
UI_BASE = "http://127.0.0.1:8233"

FLOW = r"""
id: webui-demo
namespace: e2e.webui
description: Greets, then checks the greeting twice in parallel.
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: times
    type: INT
    min: 1
    defaults: 1
tasks:
  - id: greet
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "greeting {{ inputs.name }}"
      - sleep 2
      - "echo '::{\"outputs\": {\"greeting\": \"hello {{ inputs.name }}\"}}::'"
  - id: checks
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: upper
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.greet.vars.greeting | upper }}"
      - id: length
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.greet.vars.greeting | length }}"
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.upper.value }}"
"""


def state_of(task_id: str) -> str:
    return f"document.querySelector('[data-task-id=\"{task_id}\"]')?.dataset.state"


@pytest.fixture
def chromium_path() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("no Chromium on PATH: `make test` installs Debian's `chromium` where apt-get runs as root")
    return found


@dataclass
class WebuiOutput:
    """What a `tflow webui` process printed (stdout and stderr), read as it comes."""

    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, *parts: str, timeout: float) -> str:
        """The first line holding every part, once printed; AssertionError after `timeout`."""
        found = lambda: next((line for line in self.lines if all(part in line for part in parts)), None)  # noqa: E731
        with self.changed:
            self.changed.wait_for(found, timeout)
            assert found(), f"no line with {parts} in {self.lines}"
            return found()


@contextmanager
def webui(*args: str, output: WebuiOutput | None = None) -> Iterator[str]:
    """A `tflow webui` process on a free port; yields its base URL once it serves (what it prints
    later goes to `output`)."""
    port = free_port()
    process = subprocess.Popen(tflow("webui", *args, "--port", str(port)), cwd=REPO, env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"Web view at http://127.0.0.1:{port}/"), line + (process.stdout.read() if process.poll() is not None else "")
        reader = threading.Thread(target=(output or WebuiOutput()).read, args=(process.stdout,), daemon=True)
        reader.start()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def webui_server(tmp_path: Path, temporal_address: str, worker: str) -> Iterator[str]:
    """`tflow webui FLOW` against the session's server, the test's worker behind it."""
    flow = write_flow(tmp_path, FLOW, "webui-demo.yaml")
    with webui(str(flow), "--address", temporal_address, "--task-queue", worker, "--ui-url", UI_BASE) as base:
        yield base


async def test_webui_follows_a_run_started_from_the_page(chromium_path: str, webui_server: str, tmp_path: Path) -> None:
    base = webui_server
    browser = Chromium(chromium_path, tmp_path / "profile")
    try:
        page = await browser.open_page()
        await page.navigate(f"{base}/")
        await page.wait_for("document.querySelector('[name=name]')", timeout=10)
        assert await page.evaluate(state_of("greet")) == "pending"
        assert await page.evaluate("document.querySelector('[name=times]').value") == "1"
        await page.evaluate("document.querySelector('[name=times]').value = '0'")
        await page.click("#start-button")  # refused before anything starts: the problem is shown
        await page.wait_for("document.getElementById('problems').textContent.includes('`times`')", timeout=5)
        assert await page.evaluate("location.pathname") == "/"
        await page.evaluate("document.querySelector('[name=times]').value = '1'")
        await page.evaluate("document.querySelector('[name=name]').value = 'webui'")
        await page.click("#start-button")
        started = time.monotonic()

        await page.wait_for(f"{state_of('greet')} === 'running'", timeout=10)
        shown_running = time.monotonic() - started
        running_text = await page.evaluate("document.querySelector('[data-task-id=greet] .task-state').textContent")
        assert running_text.startswith("running"), running_text
        await page.screenshot(ARTIFACTS / "webui-running.png")
        run_id = await page.evaluate("decodeURIComponent(location.pathname.split('/').pop())")
        assert run_id.startswith("webui-demo-")

        await page.wait_for(f"{state_of('greet')} === 'succeeded'", timeout=10)
        took = time.monotonic() - started
        assert 2.0 <= took < 5, f"greet (sleep 2) shown succeeded {took:.1f} s after the click"
        await page.wait_for("document.getElementById('run-state').dataset.state === 'succeeded'", timeout=10)
        for task_id in ("upper", "length", "done", "checks"):
            assert await page.evaluate(state_of(task_id)) == "succeeded", task_id
        assert "succeeded · 2." in await page.evaluate("document.querySelector('[data-task-id=greet] .task-state').textContent")
        assert (await page.evaluate("document.querySelector('[data-task-id=checks] > .box-state').textContent")).startswith("succeeded")
        link = await page.evaluate("document.getElementById('temporal-link').href")
        assert link == f"{UI_BASE}/namespaces/default/workflows/{run_id}"

        await page.click("[data-task-id=greet] rect")
        await page.wait_for("document.querySelector('#details .outputs')?.textContent.includes('hello webui')", timeout=5)
        await page.wait_for("document.querySelector('#details .logs')?.textContent.includes('greeting webui')", timeout=10)
        await page.screenshot(ARTIFACTS / "webui.png")
        print(f"greet shown running {shown_running:.2f} s after the click")

        # Attaching to the finished run by its id shows the same states and output.
        await page.navigate(f"{base}/runs/{run_id}")
        await page.wait_for(f"{state_of('length')} === 'succeeded'", timeout=10)
        await page.click("[data-task-id=length] rect")
        await page.wait_for("document.querySelector('#details .outputs')?.textContent.includes('11')", timeout=5)
    finally:
        await browser.close()

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/api/runs?flow=webui-demo") as response:
            assert run_id in [row["run_id"] for row in await response.json()]
        async with session.post(f"{base}/api/runs", json={"inputs": {"times": "0"}}, headers={"Origin": base}) as response:
            assert response.status == 400
            problems = (await response.json())["problems"]
            assert len(problems) == 1 and "`times`" in problems[0], problems
        async with session.post(f"{base}/api/runs", data="[1]", headers={"Origin": base, "Content-Type": "application/json"}) as response:
            assert response.status == 400


QUICK_FLOW = """\
id: webui-quick
namespace: e2e.webui
tasks:
  - id: one
    type: io.kestra.plugin.core.debug.Return
    format: "first"
  - id: two
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.one.value }} then second"
"""


async def test_webui_attaches_to_a_run_and_lists_runs(tmp_path: Path, client, temporal_address: str, worker: str) -> None:
    """Given a RUN_ID the page follows that run (its graph from the flow it started with); with no
    argument it lists recent runs and starts none; a missing flow file is a usage error."""
    result = await run_flow(client, write_flow(tmp_path, QUICK_FLOW, "quick.yaml"), worker)
    run_id = result["run_id"]
    address = ("--address", temporal_address, "--task-queue", worker)
    async with aiohttp.ClientSession() as session:
        with webui(run_id, *address) as base:
            async with session.get(f"{base}/api/context") as response:
                assert (await response.json())["mode"] == "run"
            async with session.get(f"{base}/api/runs/{run_id}") as response:
                run = await response.json()
            assert run["state"] == "SUCCESS"
            assert [task_run["outputs"] for task_run in run["task_runs"]] == [{"value": "first"}, {"value": "first then second"}]
            async with session.get(f"{base}/api/runs/{run_id}/flow") as response:
                graph = (await response.json())["graph"]
            assert [child["id"] for child in graph["children"]] == ["one", "two"]
            assert graph["order"] == [["one", "two"]]
            async with session.get(f"{base}/api/runs/no-such-run/flow") as response:
                assert response.status == 404
                assert "no run 'no-such-run'" in (await response.json())["problems"][0]
            async with session.get(f"{base}/runs/{run_id}") as response:
                page = await response.text()
            assert '<script src="/static/app.js">' in page
            for name in ("app.js", "graph.js", "style.css"):
                async with session.get(f"{base}/static/{name}") as response:
                    assert response.status == 200, name
        with webui(*address) as base:
            async with session.get(f"{base}/api/context") as response:
                assert (await response.json())["mode"] == "list"
            async with session.get(f"{base}/api/runs") as response:
                assert run_id in [row["run_id"] for row in await response.json()]
            async with session.post(f"{base}/api/runs", json={"inputs": {}}, headers={"Origin": base}) as response:
                assert response.status == 400
    missing = subprocess.run(tflow("webui", str(tmp_path / "missing.yaml"), *address), cwd=REPO, env=cli_env(),
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "missing.yaml" in missing.stderr, missing.stderr


GUARD_FLOW = """\
id: {flow_id}
namespace: e2e.webui
inputs:
  - id: name
    type: STRING
    defaults: page
  - id: key
    type: SECRET
    defaults: {secret}
tasks:
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.name }}}} with {{{{ inputs.key }}}}"
"""
SECRET = "browser-secret-5e1a"
REBOUND = "rebound.test"
"""A name of the attacker's that Chromium resolves to 127.0.0.1, as after DNS rebinding."""

ELSEWHERE_PAGE = """<!doctype html><title>another site</title><script>
window.attempts = Promise.all([
  fetch("{base}/api/runs", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
        body: JSON.stringify({{inputs: {{name: "from-elsewhere"}}}})}}).then((r) => r.type, (e) => "error " + e),
  fetch("{base}/api/context").then((r) => "read " + r.status, () => "blocked"),
]);
</script>"""


@pytest_asyncio.fixture
async def elsewhere() -> AsyncIterator[tuple[dict[str, str], str]]:
    """A tiny HTTP server on another port: another site, whose page (`pages["/"]`) the test sets."""
    pages: dict[str, str] = {}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=pages.get(request.path, ""), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield pages, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_webui_serves_its_own_page_only(chromium_path: str, tmp_path: Path, client: Client, worker: str,
                                              temporal_address: str, elsewhere: tuple[dict[str, str], str]) -> None:
    flow_id = f"webui-guard-{uuid.uuid4().hex[:8]}"
    flow = write_flow(tmp_path, GUARD_FLOW.format(flow_id=flow_id, secret=SECRET), "guard.yaml")
    output = WebuiOutput()
    other_pages, other = elsewhere
    browser = Chromium(chromium_path, tmp_path / "profile", [f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"])
    with webui(str(flow), "--address", temporal_address, "--task-queue", worker, output=output) as base:
        port = base.rsplit(":", 1)[1]
        try:
            page = await browser.open_page()
            # Another site's page sends a "simple" cross-origin POST (no preflight) and tries a read.
            other_pages["/"] = ELSEWHERE_PAGE.format(base=base)
            await page.navigate(f"{other}/")
            await page.wait_for("window.attempts", timeout=10)
            assert await page.evaluate("window.attempts") == ["opaque", "blocked"]
            refused = await asyncio.to_thread(output.wait_for, "refused POST /api/runs", f"Origin {other}", timeout=5)
            assert "another site" in refused

            # DNS rebinding: the attacker's own name, now pointing here, is same-origin with itself.
            await page.navigate(f"http://{REBOUND}:{port}/")
            await page.wait_for("document.body && document.body.innerText.includes('Host')", timeout=10)
            statuses = await page.evaluate(
                "Promise.all([fetch('/api/context'), fetch('/api/runs/x/events'), fetch('/api/runs', {method: 'POST', "
                "headers: {'Content-Type': 'application/json'}, body: '{\"inputs\": {}}'})].map((p) => p.then((r) => r.status)))")
            assert statuses == [403, 403, 403]
            await asyncio.to_thread(output.wait_for, "refused POST /api/runs", f"Host {REBOUND}:{port}", timeout=5)

            # The view's own page: no secret in it, and a click still starts a run.
            await page.navigate(f"{base}/")
            await page.wait_for("document.querySelector('[name=key]')", timeout=10)
            assert await page.evaluate("document.querySelector('[name=key]').value") == ""
            assert SECRET not in await page.evaluate("document.documentElement.outerHTML")
            await page.click("#start-button")
            await page.wait_for("document.getElementById('run-state').dataset.state === 'succeeded'", timeout=15)
            run_id = await page.evaluate("decodeURIComponent(location.pathname.split('/').pop())")
            await page.click("[data-task-id=use] rect")
            await page.wait_for("document.querySelector('#details .outputs')?.textContent.includes('page with ****')", timeout=5)
            assert SECRET not in await page.evaluate("document.documentElement.outerHTML")
        finally:
            await browser.close()
    used = await wait_result(client.get_workflow_handle(run_id))
    assert used["task_runs"][0]["outputs"] == {"value": f"page with {SECRET}"}  # the run had the secret; the page did not
    deadline = time.monotonic() + 10
    while run_id not in (runs := [row["run_id"] for row in await recent_runs(client, 10, flow_id)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert runs == [run_id], f"only the click started a run of {flow_id}: {runs}"


async def test_webui_without_an_address_runs_what_it_starts(tmp_path: Path) -> None:
    """No Temporal address: the page's Temporal is the embedded one (client.embedded: the dev server
    on 127.0.0.1:7233, started or reused) with an in-process worker, so a run started from the page
    ends SUCCESS; Ctrl-C says the worker lets running tasks finish first, and the command exits 0."""
    flow = write_flow(tmp_path, QUICK_FLOW, "quick.yaml")
    port = free_port()
    process = subprocess.Popen(tflow("webui", str(flow), "--port", str(port)), cwd=REPO, env=cli_env(TFLOW_HOME=str(tmp_path)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        note, line = process.stdout.readline(), process.stdout.readline()
        assert note.startswith(("Starting an embedded Temporal dev server", "Using the Temporal server already running")), note
        assert line.startswith(f"Web view at http://127.0.0.1:{port}/"), note + line
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/runs", json={"inputs": {}}, headers={"Origin": base}) as response:
                assert response.status == 200, await response.text()
                run_id = (await response.json())["run_id"]
            deadline = time.monotonic() + 30
            state = None
            while state != "SUCCESS" and time.monotonic() < deadline:
                async with session.get(f"{base}/api/runs/{run_id}") as response:
                    state = (await response.json()).get("state")
                await asyncio.sleep(0.2)
            assert state == "SUCCESS", state
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Stopping: the in-process worker lets running tasks finish first" in output, output
