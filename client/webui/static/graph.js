// Lays out and draws a flow's graph in SVG: each box's children in layers by dependency depth
// (top to bottom), boxes sized from their content, arrows between siblings. No library needed.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_W = 170, NODE_H = 46, GAP_X = 24, GAP_Y = 34, PAD = 14, HEADER = 24;

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

// Size of every item, and each box's children arranged in rows (layers).
function measure(item) {
  if (item.kind === "task") { item.w = NODE_W; item.h = NODE_H; return; }
  item.children.forEach(measure);
  const ids = new Set(item.children.map((child) => child.id));
  const before = new Map(item.children.map((child) => [child.id, []]));
  for (const [from, to] of item.order) if (ids.has(from) && ids.has(to)) before.get(to).push(from);
  const depth = new Map();
  const depthOf = (id, seen) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0; // a cycle is refused by validation; never loop on one
    seen.add(id);
    const d = Math.max(-1, ...before.get(id).map((other) => depthOf(other, seen))) + 1;
    depth.set(id, d);
    return d;
  };
  item.rows = [];
  for (const child of item.children) {
    const d = depthOf(child.id, new Set());
    (item.rows[d] = item.rows[d] || []).push(child);
  }
  item.rows = item.rows.filter(Boolean);
  const rowWidth = (row) => row.reduce((sum, child) => sum + child.w, 0) + GAP_X * (row.length - 1);
  const inner = Math.max(NODE_W, ...item.rows.map(rowWidth));
  const height = item.rows.reduce((sum, row) => sum + Math.max(...row.map((child) => child.h)), 0)
    + GAP_Y * Math.max(0, item.rows.length - 1);
  item.w = inner + 2 * PAD;
  item.h = HEADER + height + PAD + (item.rows.length ? 0 : NODE_H / 2);
}

function place(item, x, y, positions) {
  item.x = x; item.y = y;
  positions.set(item.id, item);
  if (item.kind === "task") return;
  let top = y + HEADER;
  for (const row of item.rows) {
    const width = row.reduce((sum, child) => sum + child.w, 0) + GAP_X * (row.length - 1);
    let left = x + (item.w - width) / 2;
    for (const child of row) { place(child, left, top, positions); left += child.w + GAP_X; }
    top += Math.max(...row.map((child) => child.h)) + GAP_Y;
  }
}

// Draw `graph` (client/webui/graph.py's tree) into `svg`; returns task id -> its <g> element.
const SIDE_EDGES = new Set(["errors", "finally", "on_error", "on_success"]);
function drawGraph(svg, graph, onSelect) {
  svg.replaceChildren();
  const defs = svgElement("defs", {}, svg);
  const marker = svgElement("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
  svgElement("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8c959f" }, marker);
  measure(graph);
  const positions = new Map();
  place(graph, 1, 1, positions);
  svg.setAttribute("width", graph.w + 2);
  svg.setAttribute("height", graph.h + 2);
  svg.setAttribute("viewBox", `0 0 ${graph.w + 2} ${graph.h + 2}`);
  const elements = new Map();
  const drawItem = (item, parent) => {
    const g = svgElement("g", {}, parent);
    if (item.kind === "task") {
      g.setAttribute("class", "node state-pending");
      g.dataset.taskId = item.id;
      g.dataset.state = "pending";
      svgElement("rect", { class: "task", x: item.x, y: item.y, width: item.w, height: item.h, rx: 6 }, g);
      svgElement("text", { class: "task-id", x: item.x + 10, y: item.y + 18 }, g).textContent = clip(item.label, 22);
      svgElement("text", { class: "task-state", x: item.x + 10, y: item.y + 36 }, g).textContent = "pending";
      const title = svgElement("title", {}, g);
      title.textContent = `${item.id} (${item.type})${item.notes && item.notes.length ? "\n" + item.notes.join(", ") : ""}`;
      g.addEventListener("click", () => onSelect(item.id));
      elements.set(item.id, g);
    } else {
      g.setAttribute("class", `box ${item.kind}`);
      if (item.kind === "group") { g.dataset.taskId = item.id; g.dataset.state = "pending"; elements.set(item.id, g); }
      svgElement("rect", { x: item.x, y: item.y, width: item.w, height: item.h, rx: 8 }, g);
      const label = svgElement("text", { class: "box-label", x: item.x + 10, y: item.y + 16 }, g);
      label.textContent = item.kind === "group" ? `${item.label} · ${item.type}` : item.label;
      if (item.kind === "branch") g.dataset.boxId = item.id;
      if (item.kind === "group") {
        svgElement("text", { class: "box-state", x: item.x + item.w - 10, y: item.y + 16, "text-anchor": "end" }, g).textContent = "pending";
        label.style.cursor = "pointer";
        label.addEventListener("click", () => onSelect(item.id));
      }
      item.children.forEach((child) => drawItem(child, g));
    }
  };
  drawItem(graph, svg);
  const edgeLayer = svgElement("g", {}, svg);
  for (const edge of graph.edges) {
    const from = positions.get(edge.from), to = positions.get(edge.to);
    if (!from || !to) continue;
    const x1 = from.x + from.w / 2, y1 = from.y + from.h, x2 = to.x + to.w / 2, y2 = to.y;
    const middle = (y1 + y2) / 2;
    const classes = ["edge", edge.inferred ? "inferred" : "", SIDE_EDGES.has(edge.kind) ? "branch" : ""].join(" ");
    const path = svgElement("path", { class: classes, d: `M ${x1} ${y1} C ${x1} ${middle}, ${x2} ${middle}, ${x2} ${y2}`, "marker-end": "url(#arrow)" }, edgeLayer);
    svgElement("title", {}, path).textContent = `${edge.from} → ${edge.to} (${edge.inferred ? "inferred from a template" : edge.kind})${edge.label ? ": " + edge.label : ""}`;
  }
  return elements;
}

function clip(text, length) {
  return text.length > length ? text.slice(0, length - 1) + "…" : text;
}
