"""`tflow webui` in a real browser: headless Chromium opens the page of a flow served by a `tflow
webui` process against the session's dev server, starts a run from the form (an in-process worker
runs it), sees a step running then succeeded, and clicks it to see its output and log; a
screenshot is written to tests/artifacts/webui.png (the README's docs/webui.png is a copy of one).
Skipped, saying why, where no Chromium is installed (`make test` installs it where apt can)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest

from client.devserver import free_port
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


@contextmanager
def webui(*args: str) -> Iterator[str]:
    """A `tflow webui` process on a free port; yields its base URL once it serves."""
    port = free_port()
    process = subprocess.Popen(tflow("webui", *args, "--port", str(port)), cwd=REPO, env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"Web view at http://127.0.0.1:{port}/"), line + (process.stdout.read() if process.poll() is not None else "")
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
        async with session.post(f"{base}/api/runs", json={"inputs": {"times": "0"}}) as response:
            assert response.status == 400
            problems = (await response.json())["problems"]
            assert len(problems) == 1 and "`times`" in problems[0], problems
        async with session.post(f"{base}/api/runs", data="[1]") as response:
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
            async with session.post(f"{base}/api/runs", json={"inputs": {}}) as response:
                assert response.status == 400
    missing = subprocess.run(tflow("webui", str(tmp_path / "missing.yaml"), *address), cwd=REPO, env=cli_env(),
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "missing.yaml" in missing.stderr, missing.stderr
