// The web view: a flow's start form, recent runs, and a run's graph with live task states read
// from the tflow server (JSON and server-sent events); it never talks to Temporal itself.
"use strict";

const STATE_NAMES = { CREATED: "pending", RUNNING: "running", SUCCESS: "succeeded", WARNING: "warning",
  FAILED: "failed", CANCELLED: "cancelled", SKIPPED: "skipped", PAUSED: "paused" };
const $ = (id) => document.getElementById(id);
// The server's token, written into the page: requests that change something send it back.
const TOKEN = document.querySelector("meta[name=tflow-token]").content;

const view = { context: null, runId: null, run: null, elements: new Map(), selected: null, source: null };

function el(name, attributes, ...children) {
  const element = document.createElement(name);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "text") element.textContent = value; else element.setAttribute(key, value);
  }
  for (const child of children) if (child != null) element.append(child);
  return element;
}

async function getJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error((body.problems || [response.statusText]).join("\n"));
  return body;
}

function showProblems(messages) {
  const box = $("problems");
  box.hidden = !messages || !messages.length;
  box.textContent = (messages || []).join("\n");
}

function seconds(start, end) {
  if (!start) return null;
  return ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000;
}

function formatDuration(value) {
  if (value == null) return "";
  if (value < 60) return `${value.toFixed(1)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

// --- pages ---------------------------------------------------------------------------------------

async function start() {
  view.context = await getJson("/api/context");
  const match = location.pathname.match(/^\/runs\/(.+)$/);
  if (match) return openRun(decodeURIComponent(match[1]));
  if (view.context.mode === "run") return openRun(view.context.run_id, true);
  if (view.context.mode === "flow") return openFlow(view.context.flow);
  $("title").textContent = `Runs in namespace ${view.context.namespace}`;
  return listRuns(null);
}

function openFlow(flow) {
  $("title").textContent = `${flow.namespace}.${flow.id}`;
  $("flow-description").textContent = flow.description || "";
  $("start").hidden = false;
  const fields = $("input-fields");
  fields.replaceChildren(...flow.inputs.map(inputField));
  if (!flow.inputs.length) fields.append(el("p", { text: "This flow declares no inputs." }));
  $("inputs-form").onsubmit = (event) => { event.preventDefault(); startRun(flow); };
  showGraph(flow.graph);
  listRuns(flow.id);
}

function inputField(input) {
  const type = (input.type || "STRING").toUpperCase();
  const name = input.display_name || input.id;
  // A SECRET input's default never reaches the page (default_hidden): left empty, the server uses it.
  const required = input.required !== false && input.defaults == null && !input.default_hidden;
  const label = el("label", {}, el("span", { text: `${name}${required ? " *" : ""} (${type})` }));
  const initial = input.defaults == null ? "" : input.defaults;
  let field;
  if (type === "BOOLEAN" || type === "BOOL") {
    field = el("input", { type: "checkbox" });
    field.checked = initial === true || initial === "true";
  } else if (["SELECT", "ENUM", "MULTISELECT"].includes(type)) {
    field = el("select", type === "MULTISELECT" ? { multiple: "" } : {});
    if (type !== "MULTISELECT" && !required) field.append(el("option", { value: "", text: "" }));
    const chosen = Array.isArray(initial) ? initial : [initial];
    for (const value of input.values || []) {
      const option = el("option", { value: String(value), text: String(value) });
      option.selected = chosen.includes(value);
      field.append(option);
    }
  } else if (["JSON", "YAML", "ARRAY"].includes(type)) {
    field = el("textarea", { rows: 3 });
    field.value = typeof initial === "string" ? initial : JSON.stringify(initial);
  } else {
    const kinds = { INT: "number", FLOAT: "number", SECRET: "password", DATE: "date", EMAIL: "email" };
    field = el("input", { type: kinds[type] || "text" });
    if (type === "FLOAT") field.step = "any";
    field.value = String(initial);
    if (input.default_hidden) field.placeholder = "default (hidden)";
  }
  field.name = input.id;
  field.dataset.type = type;
  if (input.description) label.title = input.description;
  label.append(field);
  return label;
}

function formInputs() {
  const inputs = {};
  for (const field of $("input-fields").querySelectorAll("[name]")) {
    if (field.type === "checkbox") inputs[field.name] = field.checked ? "true" : "false";
    else if (field.multiple) inputs[field.name] = [...field.selectedOptions].map((option) => option.value);
    else inputs[field.name] = field.value;
  }
  return inputs;
}

async function startRun(flow) {
  showProblems([]);
  $("start-button").disabled = true;
  try {
    const started = await getJson("/api/runs", { method: "POST",
      headers: { "Content-Type": "application/json", "X-Tflow-Token": TOKEN },
      body: JSON.stringify({ inputs: formInputs() }) });
    history.pushState({}, "", `/runs/${encodeURIComponent(started.run_id)}`);
    $("start").hidden = true;
    $("runs").hidden = true;
    await openRun(started.run_id);
  } catch (error) {
    showProblems(error.message.split("\n"));
  } finally {
    $("start-button").disabled = false;
  }
}

async function listRuns(flowId) {
  $("runs").hidden = false;
  $("runs-title").textContent = flowId ? `Recent runs of ${flowId}` : "Recent runs";
  try {
    const rows = await getJson(`/api/runs${flowId ? `?flow=${encodeURIComponent(flowId)}` : ""}`);
    const table = $("runs-table");
    table.replaceChildren(el("tr", {}, ...["Run", "Flow", "Status", "Started", ""].map((text) => el("th", { text }))));
    for (const row of rows) {
      const link = el("a", { href: `/runs/${encodeURIComponent(row.run_id)}`, text: row.run_id });
      const ui = row.ui_url ? el("a", { href: row.ui_url, target: "_blank", rel: "noopener", text: "Temporal UI ↗" }) : null;
      table.append(el("tr", {}, el("td", {}, link), el("td", { text: row.flow }), el("td", { text: row.status }),
        el("td", { text: row.started_at.replace("T", " ").slice(0, 19) }), el("td", {}, ui)));
    }
    if (!rows.length) table.append(el("tr", {}, el("td", { text: "No runs yet." })));
  } catch (error) {
    showProblems([error.message]);
  }
}

function showGraph(graph) {
  $("graph-section").hidden = false;
  view.elements = drawGraph($("graph"), graph, selectTask);
}

async function openRun(runId, replaceUrl) {
  view.runId = runId;
  if (replaceUrl) history.replaceState({}, "", `/runs/${encodeURIComponent(runId)}`);
  $("title").textContent = `Run ${runId}`;
  try {
    const flow = await getJson(`/api/runs/${encodeURIComponent(runId)}/flow`);
    $("title").textContent = `${flow.namespace}.${flow.id} · run ${runId}`;
    showGraph(flow.graph);
  } catch (error) {
    showProblems([error.message]);
    return;
  }
  follow(runId);
}

function follow(runId) {
  if (view.source) view.source.close();
  const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
  view.source = source;
  source.addEventListener("run", (event) => { showProblems([]); showRun(JSON.parse(event.data)); });
  source.addEventListener("problem", (event) => showProblems([JSON.parse(event.data).message]));
  source.addEventListener("end", () => source.close());
}

// --- a run's states ------------------------------------------------------------------------------

function runsByTask(run) {
  const byTask = new Map();
  for (const taskRun of run.task_runs || []) {
    if (!byTask.has(taskRun.task_id)) byTask.set(taskRun.task_id, []);
    byTask.get(taskRun.task_id).push(taskRun);
  }
  return byTask;
}

// One state for a task that may have run several times (for-each iterations): running while any
// runs, else the latest task run's.
function taskState(taskRuns) {
  if (!taskRuns || !taskRuns.length) return { state: "pending", duration: null, count: 0 };
  const states = taskRuns.map((taskRun) => taskRun.state);
  const state = states.includes("RUNNING") ? "RUNNING" : states.includes("PAUSED") ? "PAUSED" : states[states.length - 1];
  const starts = taskRuns.map((taskRun) => taskRun.started_at).filter(Boolean).sort();
  const ends = taskRuns.map((taskRun) => taskRun.ended_at).filter(Boolean).sort();
  const live = state === "RUNNING" || state === "PAUSED";
  const duration = starts.length ? seconds(starts[0], live ? null : ends[ends.length - 1]) : null;
  return { state: STATE_NAMES[state] || state.toLowerCase(), duration, count: taskRuns.length };
}

function showRun(run) {
  view.run = run;
  const state = STATE_NAMES[run.state] || (run.state || "").toLowerCase();
  const badge = $("run-state");
  badge.hidden = false;
  badge.className = `badge state-${state}`;
  badge.textContent = state;
  badge.dataset.state = state;
  const link = $("temporal-link");
  link.hidden = !run.ui_url;
  if (run.ui_url) link.href = run.ui_url;
  paintStates();
  if (view.selected) showDetails(view.selected, false);
}

function paintStates() {
  const run = view.run;
  if (!run) return;
  const live = !run.ended_at;
  $("run-duration").textContent = formatDuration(run.duration_s != null && !live ? run.duration_s : seconds(run.started_at, run.ended_at));
  const byTask = runsByTask(run);
  for (const [taskId, element] of view.elements) {
    const { state, duration, count } = taskState(byTask.get(taskId));
    element.dataset.state = state;
    element.classList.remove(...[...element.classList].filter((name) => name.startsWith("state-")));
    element.classList.add(`state-${state}`);
    const text = element.querySelector(":scope > .task-state, :scope > .box-state");
    const parts = [state, formatDuration(duration), count > 1 ? `×${count}` : ""].filter(Boolean);
    text.textContent = parts.join(" · ");
  }
}

setInterval(() => { if (view.run && !view.run.ended_at) paintStates(); }, 500);

function selectTask(taskId) {
  if (!view.run) return;
  view.selected = taskId;
  for (const [id, element] of view.elements) element.classList.toggle("selected", id === taskId);
  showDetails(taskId, true);
}

function pre(value) {
  return el("pre", { text: typeof value === "string" ? value : JSON.stringify(value, null, 2) });
}

async function showDetails(taskId, withLogs) {
  const panel = $("details");
  panel.hidden = false;
  const taskRuns = runsByTask(view.run).get(taskId) || [];
  const body = [el("h3", { text: taskId })];
  if (!taskRuns.length) body.push(el("p", { text: "Not started yet." }));
  for (const taskRun of taskRuns) {
    const state = STATE_NAMES[taskRun.state] || taskRun.state;
    const facts = el("dl", {},
      el("dt", { text: "state" }), el("dd", {}, el("span", { class: `badge state-${state}`, text: state })),
      taskRun.value != null ? el("dt", { text: "value" }) : null, taskRun.value != null ? el("dd", { text: String(taskRun.value) }) : null,
      el("dt", { text: "attempts" }), el("dd", { text: String(taskRun.attempts ?? "") }),
      el("dt", { text: "started" }), el("dd", { text: taskRun.started_at || "" }),
      el("dt", { text: "ended" }), el("dd", { text: taskRun.ended_at || "" }),
      el("dt", { text: "duration" }), el("dd", { text: formatDuration(seconds(taskRun.started_at, taskRun.ended_at)) }));
    const section = el("div", { class: "task-run", "data-task-run-id": taskRun.id }, facts);
    if (taskRun.outputs && Object.keys(taskRun.outputs).length) section.append(el("h4", { text: "Outputs" }), el("div", { class: "outputs" }, pre(taskRun.outputs)));
    if (taskRun.error) section.append(el("h4", { text: "Error" }), el("div", { class: "error" }, pre(taskRun.error.message || taskRun.error)));
    body.push(section);
  }
  const logs = el("div", { class: "logs" });
  body.push(el("h4", { text: "Logs" }), logs);
  const previous = panel.querySelector(".logs");
  if (!withLogs && previous) logs.replaceChildren(...previous.childNodes);
  panel.replaceChildren(...body);
  if (withLogs || !previous || taskRuns.some((taskRun) => !taskRun.ended_at)) await loadLogs(taskId, logs);
}

const LIVE_LOG_MS = 1000; // a running attempt's log is read again this often (its worker heartbeats ~1/s)

async function loadLogs(taskId, container) {
  try {
    const attempts = await getJson(`/api/runs/${encodeURIComponent(view.runId)}/logs?task=${encodeURIComponent(taskId)}`);
    if (attempts.some((attempt) => attempt.state === "RUNNING")) {
      setTimeout(() => { if (view.selected === taskId && container.isConnected) loadLogs(taskId, container); }, LIVE_LOG_MS);
    }
    if (!attempts.length) { container.replaceChildren(el("p", { text: "No logs (yet)." })); return; }
    container.replaceChildren(...attempts.map((attempt) => el("div", {},
      el("div", { text: `${attempt.label} · attempt ${attempt.attempt} · ${attempt.state}` }),
      pre(attempt.lines.map((line) => `${String(line.timestamp || "").slice(11, 23)} ${line.level || "INFO"} ${line.message}`).join("\n") || "(no output)"))));
  } catch (error) {
    container.replaceChildren(el("p", { text: error.message }));
  }
}

window.addEventListener("popstate", () => location.reload());
start().catch((error) => showProblems([error.message]));
