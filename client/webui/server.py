"""The web view's server (aiohttp): the page's files, and JSON and server-sent events read from
Temporal through the same client functions as the CLI (`client.runs`, `client.task_logs`,
`client.run_list`). The browser never talks to Temporal. It answers its own page only
(`guard.py`) and never sends it a SECRET value (`masking.py`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from aiohttp import web
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from client.run_list import recent_runs
from client.runs import read_result, start_run, ui_url
from client.task_logs import log_task_logs, read_task_logs
from client.webui.graph import page_graph
from client.webui.guard import TOKEN_PLACEHOLDER, Guard, add_security_headers, url_host
from client.webui.masking import Masker, page_inputs
from temporal_flows.language.inputs import InputError, resolve_inputs
from temporal_flows.language.loader import LoadedFlow
from temporal_flows.model.flow import Flow

STATIC = Path(__file__).parent / "static"
POLL_SECONDS = 0.5
"""How often a followed run is read again while it runs."""
FINAL_STATES = frozenset({"SUCCESS", "WARNING", "FAILED", "CANCELLED"})
RECENT_RUNS = 30
SHUTDOWN_SECONDS = 2.0
"""On Ctrl-C, how long open pages' event streams may hold the server before they are cut."""


@dataclass(frozen=True)
class RunFacts:
    """What a run started with that the page needs: its flow (for the graph) and what to mask."""

    flow: Flow
    masker: Masker


@dataclass
class WebContext:
    """What the page is about and how to reach Temporal."""

    client: Client
    namespace: str
    task_queue: str
    ui_base: Optional[str] = None
    loaded: Optional[LoadedFlow] = None
    """Given a FLOW: its graph and inputs, and the page can start runs of it."""
    subflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: Optional[str] = None
    """Given a RUN_ID: the page opens on it."""
    runs: dict[str, RunFacts] = field(default_factory=dict)
    """Each viewed run's flow and secrets, as it started (read once from its history)."""

    def ui_link(self, run_id: str) -> Optional[str]:
        return ui_url(self.ui_base, self.namespace, run_id)


CONTEXT = web.AppKey("context", WebContext)
PAGE = web.AppKey("page", str)
"""index.html with the server's token in it."""


def create_app(context: WebContext, guard: Guard) -> web.Application:
    app = web.Application(middlewares=[guard.middleware])
    app[CONTEXT] = context
    app[PAGE] = (STATIC / "index.html").read_text().replace(TOKEN_PLACEHOLDER, guard.token)
    app.on_response_prepare.append(add_security_headers)
    app.add_routes([
        web.get("/", _index),
        web.get("/runs/{run_id}", _index),
        web.get("/api/context", _context),
        web.get("/api/runs", _list),
        web.post("/api/runs", _start),
        web.get("/api/runs/{run_id}", _run),
        web.get("/api/runs/{run_id}/flow", _run_flow),
        web.get("/api/runs/{run_id}/events", _events),
        web.get("/api/runs/{run_id}/logs", _logs),
        web.static("/static", STATIC),
    ])
    return app


def _ctx(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


async def _index(request: web.Request) -> web.Response:
    """The page, with this server's token for the requests that change something."""
    return web.Response(text=request.app[PAGE], content_type="text/html", headers={"Cache-Control": "no-store"})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda value: json.dumps(value, default=str))


def _flow_data(flow: Flow) -> dict[str, Any]:
    return {"id": flow.id, "namespace": flow.namespace, "description": flow.description,
            "inputs": page_inputs(flow.inputs), "graph": page_graph(flow)}


async def _context(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    mode = "flow" if ctx.loaded else "run" if ctx.run_id else "list"
    return _json({"mode": mode, "namespace": ctx.namespace, "temporal_ui": ctx.ui_base, "run_id": ctx.run_id,
                  "flow": _flow_data(ctx.loaded.flow) if ctx.loaded else None})


async def _list(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    flow_id = request.query.get("flow") or None
    rows = await recent_runs(ctx.client, RECENT_RUNS, flow_id)
    return _json([{**row, "ui_url": ctx.ui_link(row["run_id"])} for row in rows])


async def _start(request: web.Request) -> web.Response:
    """Start a run of the page's flow with the form's inputs; problems with them come back as 400."""
    ctx = _ctx(request)
    if ctx.loaded is None:
        return _json({"problems": ["this page was opened without a flow: `tflow webui FLOW` starts runs"]}, 400)
    try:
        body = await request.json()
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("inputs") or {}, dict):
        return _json({"problems": ['expected a JSON object {"inputs": {name: value}}']}, 400)
    given = {name: value for name, value in (body.get("inputs") or {}).items() if value not in (None, "")}
    try:
        inputs = resolve_inputs(ctx.loaded.flow.inputs, given)
    except InputError as error:
        return _json({"problems": error.messages}, 400)
    try:
        handle = await start_run(ctx.client, ctx.loaded, task_queue=ctx.task_queue, inputs=inputs, subflows=ctx.subflows)
    except RPCError as error:
        return _json({"problems": [f"Temporal refused the start ({error.status.name}): {error.message}"]}, 502)
    ctx.runs[handle.id] = RunFacts(ctx.loaded.flow, Masker.of_run(ctx.loaded.flow, inputs))
    return _json({"run_id": handle.id, "ui_url": ctx.ui_link(handle.id)})


async def _run_flow(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    try:
        facts = await _facts_of(_ctx(request), run_id)
    except RPCError as error:
        return _rpc_error(run_id, error)
    return _json(_flow_data(facts.flow))


async def _facts_of(ctx: WebContext, run_id: str) -> RunFacts:
    """The flow and inputs a run started with: its workflow input, in the first event of its history."""
    if run_id not in ctx.runs:
        handle = ctx.client.get_workflow_handle(run_id)
        async for event in handle.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [started] = await ctx.client.data_converter.decode(list(payloads)[:1], [dict])
            flow = Flow.from_dict(started["flow"])
            ctx.runs[run_id] = RunFacts(flow, Masker.of_run(flow, started.get("inputs") or {}))
            break
    return ctx.runs[run_id]


async def _snapshot(ctx: WebContext, handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's SPEC §6 object as the page may see it (its secrets masked)."""
    facts = await _facts_of(ctx, handle.id)
    result = await read_result(handle)
    return facts.masker.run({**result, "ui_url": ctx.ui_link(handle.id)})


async def _run(request: web.Request) -> web.Response:
    ctx, run_id = _ctx(request), request.match_info["run_id"]
    try:
        return _json(await _snapshot(ctx, ctx.client.get_workflow_handle(run_id)))
    except RPCError as error:
        return _rpc_error(run_id, error)
    except WorkflowQueryFailedError as error:
        return _json({"problems": [_message(run_id, error)]}, 502)


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the run's state (SPEC §6 object) each time it changes, until it ends."""
    ctx, run_id = _ctx(request), request.match_info["run_id"]
    handle = ctx.client.get_workflow_handle(run_id)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    last = None
    try:
        while True:
            try:
                snapshot = await _snapshot(ctx, handle)
            except Exception as error:  # noqa: BLE001 - say it on the page and try again (e.g. no worker answers yet)
                masker = ctx.runs[run_id].masker if run_id in ctx.runs else Masker()
                await response.write(_event("problem", {"message": masker.scrub(_message(run_id, error))}))
                await asyncio.sleep(POLL_SECONDS * 4)
                continue
            data = json.dumps(snapshot, default=str)
            if data != last:
                await response.write(f"event: run\ndata: {data}\n\n".encode())
                last = data
            if snapshot.get("state") in FINAL_STATES:
                await response.write(_event("end", {}))
                break
            await asyncio.sleep(POLL_SECONDS)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the page went away
    return response


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _logs(request: web.Request) -> web.Response:
    """Each closed attempt's log of the run, then each running attempt's last lines (the page reads
    it again while a task runs, so they show within a poll), then its `log` tasks' lines; only a
    task's with `?task=ID`."""
    ctx, run_id = _ctx(request), request.match_info["run_id"]
    task_id = request.query.get("task") or None
    try:
        facts = await _facts_of(ctx, run_id)
        handle = ctx.client.get_workflow_handle(run_id)
        attempts = await read_task_logs(handle, task_id, running=True)
        attempts += log_task_logs(await _task_runs(handle), task_id)
    except RPCError as error:
        return _rpc_error(run_id, error)
    return _json(facts.masker.scrub([asdict(attempt) for attempt in attempts]))


async def _task_runs(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The run's ledger, or none when no worker answers for a running run (its logs still show)."""
    try:
        return (await read_result(handle)).get("task_runs") or []
    except WorkflowQueryFailedError:
        return []


def _message(run_id: str, error: BaseException) -> str:
    if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
        return f"no run {run_id!r} in this namespace"
    return f"cannot read run {run_id!r}: {getattr(error, 'message', None) or error}"


def _rpc_error(run_id: str, error: RPCError) -> web.Response:
    status = 404 if error.status == RPCStatusCode.NOT_FOUND else 502
    return _json({"problems": [_message(run_id, error)]}, status)


@dataclass
class WebServer:
    """A serving web view: its page's address, its guard (what it refused), and how to stop it."""

    runner: web.AppRunner
    guard: Guard
    url: str

    async def cleanup(self) -> None:
        await self.runner.cleanup()


async def serve(context: WebContext, host: str, port: int,
                report: Optional[Callable[[str], None]] = None) -> WebServer:
    """Start serving the page on `host:port` (port 0: a free one), answering only requests whose
    Host names it; `report` hears each refused request. The caller calls `cleanup()` at the end."""
    guard = Guard() if report is None else Guard(report=report)
    runner = web.AppRunner(create_app(context, guard), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    ports = sorted({address[1] for address in runner.addresses})
    guard.serve_at(host, ports)
    return WebServer(runner, guard, f"http://{url_host(host)}:{ports[0]}/")
