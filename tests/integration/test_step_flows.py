"""Step flows (SPEC §3.1, seed 004) on the session's Temporal server against a local HTTP server
standing in for `api.example.com` (only the host is substituted in the seed's flow text).

The three flows of seed 004 are extracted from the seed when the tests run (never copied into the
project). The server records when each request started and ended, which tells what overlapped.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.client import Client

from tests.support import REPO, cli_env, run_flow, runs_of, task_run, tflow, write_flow

SEED = next(iter(sorted((REPO.parent / "shared" / "seeds").glob("004_*.txt"))), None)
FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
DELAY_S = 0.6
"""How long the server takes per request, so overlapping requests are told from sequential ones."""
SLOW_S = 3.0
"""A request the `fail` test expects to be cancelled while it runs."""
TOKEN = "tok-51"
DB_ID = "db-42"

MERGE_PY = """\
import json, os
print(json.dumps({"cwd": os.getcwd(), "merged": True}))
"""


def seed_flows() -> dict[str, str]:
    """Seed 004's ```yaml blocks: parallel (3 fetches), mixed (auth, 2 fetches, merge), sequential."""
    if SEED is None:
        pytest.skip("seed 004 is not beside the project (../shared/seeds)")
    blocks = FENCE.findall(SEED.read_text(encoding="utf-8"))
    assert len(blocks) == 3, "seed 004 has three flows"
    return dict(zip(("parallel", "mixed", "sequential"), blocks))


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def request(self, path: str) -> dict[str, Any]:
        found = [request for request in self.requests if request["path"] == path]
        assert len(found) == 1, f"expected one request to {path}, saw {[r['path'] for r in self.requests]}"
        return found[0]


class Handler(BaseHTTPRequestHandler):
    server: ApiServer

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = self.path
        if path == "/auth":
            status, answer = 200, {"access_token": TOKEN}
        elif path == "/databases" and self.command == "POST":
            status, answer = 200, {"id": DB_ID}
        elif path.startswith("/fail"):
            status, answer = 500, {"error": "down"}
        else:
            status, answer = 200, {"path": path, "items": [1, 2], "note": "it's \"quoted\" $HOME"}
        time.sleep(SLOW_S if "slow" in path else DELAY_S)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.server.lock:
            self.server.requests.append({
                "method": self.command, "path": path, "headers": dict(self.headers), "body": body,
                "start": started, "end": time.monotonic(),
            })

    do_GET = do_POST = _answer


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def write_seed_flow(folder: Path, name: str, api: ApiServer) -> Path:
    text = seed_flows()[name].replace("https://api.example.com", f"http://{api.host}")
    return write_flow(folder, text, f"{name}.yaml")


def overlap(*requests: dict[str, Any]) -> bool:
    """Were all these requests in flight at one moment?"""
    return max(request["start"] for request in requests) < min(request["end"] for request in requests)


async def test_independent_steps_run_in_parallel(client: Client, worker: str, api: ApiServer, tmp_path: Path) -> None:
    result = await run_flow(client, write_seed_flow(tmp_path, "parallel", api), worker)
    assert result["state"] == "SUCCESS", result["error"]
    assert result["flow"]["id"] == "parallel"  # the file's stem
    users, products, orders = (api.request(path) for path in ("/users", "/products", "/orders"))
    assert overlap(users, products, orders)
    assert result["duration_s"] < 3 * DELAY_S + 1.0
    assert task_run(result, "fetch_orders")["outputs"]["orders"]["path"] == "/orders"


async def test_max_workers_one_runs_steps_one_at_a_time(client: Client, worker: str, api: ApiServer, tmp_path: Path) -> None:
    result = await run_flow(client, write_seed_flow(tmp_path, "parallel", api), worker, max_workers=1)
    assert result["state"] == "SUCCESS", result["error"]
    requests = sorted(api.requests, key=lambda request: request["start"])
    assert len(requests) == 3
    for first, second in zip(requests, requests[1:]):
        assert not overlap(first, second), (first["path"], second["path"])


async def test_mixed_flow_orders_steps_by_inferred_and_declared_dependencies(
    client: Client, worker: str, api: ApiServer, tmp_path: Path
) -> None:
    (tmp_path / "merge.py").write_text(MERGE_PY)
    result = await run_flow(client, write_seed_flow(tmp_path, "mixed", api), worker)
    assert result["state"] == "SUCCESS", result["error"]
    auth, users, products = api.request("/auth"), api.request("/users"), api.request("/products")
    assert auth["end"] <= users["start"] and auth["end"] <= products["start"]
    assert overlap(users, products)
    assert users["headers"]["Authorization"] == f"Bearer {TOKEN}"  # the jmespath extractor's result
    combine = task_run(result, "combine_data")
    assert combine["started_at"] >= task_run(result, "fetch_users")["ended_at"]
    assert combine["started_at"] >= task_run(result, "fetch_products")["ended_at"]
    assert combine["outputs"]["combined"] == {"cwd": str(tmp_path), "merged": True}  # merge.py beside the flow


async def test_depends_on_waits_and_the_extracted_id_is_in_the_url(
    client: Client, worker: str, api: ApiServer, tmp_path: Path
) -> None:
    result = await run_flow(client, write_seed_flow(tmp_path, "sequential", api), worker)
    assert result["state"] == "SUCCESS", result["error"]
    create, schema = api.request("/databases"), api.request(f"/databases/{DB_ID}/schema")
    assert create["method"] == schema["method"] == "POST"
    assert create["end"] <= schema["start"]
    assert task_run(result, "create_database")["outputs"]["db_id"] == DB_ID


WIDE_FLOW = """\
sources:
  api: {type: rest}
  local: {type: process}
flow:
""" + "".join(f"""\
  - name: s{index}
    source: api
    input: {{url: "http://<<host>>/s{index}"}}
    output: [{{name: data, type: json}}]
""" for index in range(1, 6)) + """\
  - name: echo
    source: local
    input:
      command: ["python", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", "{{ flows.s1.data.note }}", "two words"]
    output: [{name: argv, type: json}]
"""


async def test_at_most_four_steps_at_once_by_default_and_arguments_reach_a_process_as_rendered(
    client: Client, worker: str, api: ApiServer, tmp_path: Path
) -> None:
    result = await run_flow(client, write_flow(tmp_path, WIDE_FLOW.replace("<<host>>", api.host), "wide.yaml"), worker)
    assert result["state"] == "SUCCESS", result["error"]
    moments = sorted([(request["start"], 1) for request in api.requests] + [(request["end"], -1) for request in api.requests])
    running = peak = 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    assert peak == 4
    assert task_run(result, "echo")["outputs"]["argv"] == ["it's \"quoted\" $HOME", "two words"]


FAILING_FLOW = """\
sources:
  api:
    type: rest
flow:
  - name: broken
    source: api
    on_error: <<policy>>
    input:
      url: http://<<host>>/fail
    output:
      - name: token
        type: jmespath
        value: access_token
  - name: uses_token
    source: api
    input:
      url: http://<<host>>/echo?token={{ flows.broken.token }}
  - name: after_that
    source: api
    depends_on: [uses_token]
    input:
      url: http://<<host>>/after
  - name: other_branch
    source: api
    input:
      url: http://<<host>>/other
"""


def failing_flow(folder: Path, policy: str, api: ApiServer) -> Path:
    text = FAILING_FLOW.replace("<<policy>>", policy).replace("<<host>>", api.host)
    return write_flow(folder, text, f"on_error_{policy}.yaml")


async def test_on_error_skip_skips_descendants_and_other_branches_go_on(
    client: Client, worker: str, api: ApiServer, tmp_path: Path
) -> None:
    result = await run_flow(client, failing_flow(tmp_path, "skip", api), worker)
    assert result["state"] == "WARNING"
    states = {run["task_id"]: run["state"] for run in result["task_runs"]}
    assert states["broken"] == "FAILED"
    assert states["uses_token"] == states["after_that"] == "SKIPPED"
    assert states["other_branch"] == "SUCCESS"
    assert sorted(request["path"] for request in api.requests) == ["/fail", "/other"]


async def test_on_error_continue_runs_dependents_with_null_outputs(
    client: Client, worker: str, api: ApiServer, tmp_path: Path
) -> None:
    result = await run_flow(client, failing_flow(tmp_path, "continue", api), worker)
    assert result["state"] == "WARNING"
    states = {run["task_id"]: run["state"] for run in result["task_runs"]}
    assert states == {"steps": "WARNING", "broken": "FAILED", "uses_token": "SUCCESS", "after_that": "SUCCESS", "other_branch": "SUCCESS"}
    assert sorted(request["path"] for request in api.requests) == ["/after", "/echo?token=", "/fail", "/other"]


async def test_on_error_fail_cancels_running_steps_and_starts_no_new_one(
    client: Client, worker: str, api: ApiServer, tmp_path: Path
) -> None:
    text = FAILING_FLOW.replace("    on_error: <<policy>>\n", "").replace("<<host>>", api.host)
    text = text.replace("/other", "/other?slow")
    result = await run_flow(client, write_flow(tmp_path, text, "on_error_fail.yaml"), worker)
    assert result["state"] == "FAILED"
    assert task_run(result, "broken")["state"] == "FAILED"
    assert runs_of(result, "uses_token") == [] and runs_of(result, "after_that") == []
    assert task_run(result, "other_branch")["state"] == "CANCELLED"
    assert result["duration_s"] < SLOW_S  # the slow step was cancelled, not waited for


def test_validate_names_a_misspelled_output_and_suggests_the_declared_one(tmp_path: Path) -> None:
    text = seed_flows()["mixed"].replace("flows.authenticate.token", "flows.authenticate.tokne")
    path = write_flow(tmp_path, text, "mixed.yaml")
    done = subprocess.run(tflow("validate", str(path)), capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: .*`tokne`.*did you mean `token`", output), output
    assert "Traceback" not in output


def test_validate_reports_a_cycle_with_its_members(tmp_path: Path) -> None:
    text = seed_flows()["sequential"].replace(
        "  - name: create_database\n    source: database_admin_api\n",
        "  - name: create_database\n    source: database_admin_api\n    depends_on: [create_schema]\n",
    )
    assert "depends_on: [create_schema]" in text
    path = write_flow(tmp_path, text, "sequential.yaml")
    done = subprocess.run(tflow("validate", str(path)), capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    cycle = [line for line in (done.stdout + done.stderr).splitlines() if "cycle" in line]
    assert len(cycle) == 1 and "`create_database`" in cycle[0] and "`create_schema`" in cycle[0], cycle


async def test_tflow_run_json_runs_a_step_flow_on_a_cluster(
    client: Client, worker: str, temporal_address: str, api: ApiServer, tmp_path: Path
) -> None:
    """`tflow run --json --address` (workers elsewhere: here the test's): the skip flow, WARNING → exit 0."""
    path = failing_flow(tmp_path, "skip", api)
    command = tflow("run", str(path), "--json", "--address", temporal_address, "--task-queue", worker)
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["flow"], result["state"]) == ({"namespace": "default", "id": "on_error_skip"}, "WARNING")
    assert [run["task_id"] for run in result["task_runs"] if run["state"] == "SKIPPED"] == ["uses_token", "after_that"]
