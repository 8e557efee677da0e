// modeldeploy dashboard: plain JavaScript, no framework, no build step.
//
// How it works, top to bottom:
//   1. connect() opens /api/events (server-sent events). The server sends one "reset" message with
//      every ModelDeployment, then "upsert"/"delete" messages as its Kubernetes watch sees changes.
//   2. Each message updates `state` and redraws the card of that ModelDeployment (renderCard).
//   3. Every few seconds (and after a change) loadCharts() asks the server for the Prometheus series
//      of each ModelDeployment and redraws its charts.
//   4. With --enable-actions the server says `actions: true`; then each card has buttons that POST
//      {"action": "..."} and show the operator's acknowledgement.
// Every value shown comes from the server's JSON; text is inserted with textContent (never as HTML).

"use strict";

const state = {
  actions: false, // may the page act (promote, abort, ...)? Said by the server.
  items: new Map(), // "namespace/name" -> snapshot (see snapshot.py)
  charts: new Map(), // "namespace/name" -> the /charts answer
  chartsFetchedAt: new Map(), // "namespace/name" -> Date.now() of the last request
  actionResults: new Map(), // "namespace/name" -> text of the latest action answer
};
const CHART_REFRESH_MS = 3000;
const COLORS = ["#1f5fbf", "#2e7d32", "#8e24aa", "#ef6c00", "#00838f", "#6d4c41"];

// ---- small DOM helpers ---------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function cardId(key) {
  return "md-" + key.replace(/[^A-Za-z0-9-]/g, "-");
}

// ---- number formats ------------------------------------------------------------------------
function format(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (unit === "ratio") return (value * 100).toPrecision(3) + "%";
  if (unit === "seconds") return value < 1 ? (value * 1000).toPrecision(3) + " ms" : value.toPrecision(3) + " s";
  if (unit === "per_second") return value.toPrecision(3) + "/s";
  if (unit === "flag") return value >= 1 ? "tripped" : "no";
  return Number(value).toPrecision(4);
}

// The unit of an analysis metric by its name (built-ins); custom metrics are plain numbers.
function metricUnit(metric) {
  if (metric === "latencyP99") return "seconds";
  if (["errorRate", "errorRateDeltaToStable", "shadowAgreement"].includes(metric)) return "ratio";
  return "number";
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

// ---- the chart: lines over time, a threshold, marks and dots -------------------------------
// spec: {title, unit, domain: [t0, t1] (unix s), lines: [{name, color, points: [[t, v]]}],
//        threshold, dots: [{t, v, cls, title}], marks: [{t, label, cls}]}
const W = 300, H = 120, PAD = { left: 44, right: 8, top: 10, bottom: 18 };

function lineChart(spec) {
  const [t0, t1] = spec.domain;
  const values = spec.lines.flatMap((l) => l.points.map((p) => p[1]));
  values.push(...spec.dots.map((d) => d.v));
  if (spec.threshold !== null && spec.threshold !== undefined) values.push(spec.threshold);
  let top = Math.max(0, ...values.filter(Number.isFinite));
  if (top === 0) top = spec.unit === "ratio" ? 0.01 : 1;
  top *= 1.15;
  const x = (t) => PAD.left + ((t - t0) / Math.max(1e-9, t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);

  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.title });
  chart.append(svg("line", { x1: PAD.left, y1: y(0), x2: W - PAD.right, y2: y(0), stroke: "#c5cad5" }));
  chart.append(svg("text", { x: PAD.left - 3, y: y(0) + 3, "text-anchor": "end" }, format(0, spec.unit)));
  chart.append(svg("text", { x: PAD.left - 3, y: PAD.top + 6, "text-anchor": "end" }, format(top, spec.unit)));
  chart.append(svg("text", { x: PAD.left, y: H - 4 }, clock(t0)));
  chart.append(svg("text", { x: W - PAD.right, y: H - 4, "text-anchor": "end" }, clock(t1)));
  if (spec.threshold !== null && spec.threshold !== undefined) {
    const ty = y(spec.threshold);
    chart.append(svg("line", { class: "threshold", x1: PAD.left, y1: ty, x2: W - PAD.right, y2: ty }));
    chart.append(svg("text", { x: W - PAD.right, y: ty - 2, "text-anchor": "end" }, "limit " + format(spec.threshold, spec.unit)));
  }
  for (const line of spec.lines) {
    if (!line.points.length) continue;
    const path = line.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    chart.append(svg("path", { d: path, fill: "none", stroke: line.color, "stroke-width": 1.5, "data-revision": line.name }));
  }
  for (const dot of spec.dots) {
    const circle = svg("circle", { class: dot.cls, cx: x(dot.t), cy: y(dot.v), r: dot.cls === "breach" ? 3.5 : 2, fill: dot.color || "#1f5fbf" });
    circle.append(svg("title", {}, dot.title));
    chart.append(circle);
  }
  for (const mark of spec.marks) {
    if (mark.t < t0 || mark.t > t1) continue;
    chart.append(svg("line", { class: mark.cls, x1: x(mark.t), y1: PAD.top, x2: x(mark.t), y2: H - PAD.bottom }));
    chart.append(svg("text", { class: mark.cls, x: x(mark.t) - 2, y: PAD.top + 8, "text-anchor": "end" }, mark.label));
  }
  return chart;
}

// Vertical marks for the finished rollouts in the history: "rolled back" (red) and "promoted".
function historyMarks(item) {
  return item.history
    .filter((h) => h.outcome === "RolledBack" || h.outcome === "Promoted")
    .map((h) => ({
      t: Date.parse(h.at) / 1000,
      label: h.outcome === "RolledBack" ? "rolled back" : "promoted",
      cls: h.outcome === "RolledBack" ? "breach" : "promoted",
    }));
}

function revisionColor(item, revision) {
  if (revision === item.stable.revision) return COLORS[1];
  if (revision === item.canary.revision || revision === item.abortedRevision) return COLORS[0];
  let hash = 0;
  for (const c of revision) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return COLORS[2 + (hash % (COLORS.length - 2))];
}

// One chart per analysis metric, from the values the dashboard recorded (value vs threshold; a
// failed run is a red dot: the breach).
function analysisCharts(item) {
  const byMetric = new Map();
  for (const sample of item.recorded) {
    if (!byMetric.has(sample.metric)) byMetric.set(sample.metric, []);
    byMetric.get(sample.metric).push({ ...sample, t: Date.parse(sample.at) / 1000 });
  }
  const figures = [];
  for (const [metric, samples] of byMetric) {
    const unit = metricUnit(metric);
    const measured = samples.filter((s) => s.value !== null && s.value !== undefined);
    const times = samples.map((s) => s.t);
    const domain = [Math.min(...times) - 1, Math.max(...times) + 1];
    const last = samples[samples.length - 1];
    const chart = lineChart({
      title: metric,
      unit,
      domain,
      lines: [{ name: "value", color: "#1f5fbf", points: measured.map((s) => [s.t, s.value]) }],
      threshold: last.threshold,
      dots: measured.map((s) => ({
        t: s.t,
        v: s.value,
        cls: s.verdict === "Fail" ? "breach" : "run",
        title: `${s.verdict}: ${s.message}`,
      })),
      marks: historyMarks(item),
    });
    figures.push(
      el("figure", { class: "analysis-chart", "data-metric": metric },
        el("figcaption", {}, `${metric} (analysis)`,
          el("span", { class: "latest verdict-" + last.verdict }, `${last.verdict} ${format(last.value, unit)}`)),
        chart)
    );
  }
  return figures;
}

// The Prometheus charts (requests/s, error ratio, p99, shadow agreement, guard), one line per revision.
function prometheusCharts(item) {
  const answer = state.charts.get(item.key);
  if (!answer) return [el("p", { class: "note" }, "loading Prometheus charts…")];
  if (answer.error) return [el("p", { class: "note" }, answer.error)];
  return answer.charts.map((c) => {
    const lines = c.series.map((s) => ({ name: s.revision, color: revisionColor(item, s.revision), points: s.points }));
    const latest = lines.map((l) => l.points.length ? `${l.name.slice(0, 6)} ${format(l.points[l.points.length - 1][1], c.unit)}` : "").filter(Boolean).join(" · ");
    return el("figure", { class: "prometheus-chart", "data-chart": c.id, title: c.query },
      el("figcaption", {}, c.title, el("span", { class: "latest" }, latest)),
      c.error ? el("p", { class: "note" }, c.error)
        : lineChart({ title: c.title, unit: c.unit, domain: [answer.start, answer.end], lines, threshold: null, dots: [], marks: historyMarks(item) }));
  });
}

// ---- one card per ModelDeployment ----------------------------------------------------------
function renderCard(item) {
  const phase = item.phase + (item.pauseReason ? ` (${item.pauseReason})` : "");
  const stableShare = 100 - item.traffic.canaryWeight;
  const revisions = [];
  for (const [role, rev] of [["stable", item.stable], ["new", item.canary]]) {
    if (rev.revision) revisions.push(el("dt", {}, role), el("dd", { class: "revision-" + role }, `${rev.revision}  ${rev.image || ""}`));
  }
  const legend = [item.stable.revision, item.canary.revision || item.abortedRevision].filter(Boolean)
    .map((r) => el("span", { style: `color:${revisionColor(item, r)}` }, `━ ${r}${r === item.stable.revision ? " (stable)" : ""}`));

  const card = el("section", { class: "md", id: cardId(item.key), "data-key": item.key },
    el("h2", {}, item.name, el("span", { class: "ns" }, item.namespace),
      el("span", { class: "phase phase-" + item.phase, "data-testid": "phase" }, phase)),
    item.message ? el("p", { class: "message" }, item.message) : null,
    item.problem ? el("p", { class: "rollback-reason" }, item.problem) : null,
    item.rollbackReason && item.phase === "RolledBack"
      ? el("p", { class: "rollback-reason", "data-testid": "rollback-reason" }, "Rolled back: " + item.rollbackReason) : null,
    el("dl", { class: "revisions" }, revisions),
    el("h3", {}, "Traffic"),
    el("div", { class: "traffic", "data-testid": "traffic" },
      stableShare > 0 ? el("div", { class: "stable", style: `width:${stableShare}%` }, `stable ${stableShare}%`) : null,
      item.traffic.canaryWeight > 0 ? el("div", { class: "canary", style: `width:${item.traffic.canaryWeight}%` }, `canary ${item.traffic.canaryWeight}%`) : null),
    el("p", { class: "shadow-note" }, `shadow copies: ${item.traffic.shadowPercent}% of requests`),
    el("h3", {}, "Steps"),
    el("ol", { class: "timeline", "data-testid": "steps" },
      item.steps.map((s) => el("li", { class: s.state, "data-state": s.state, title: s.state }, `${s.index + 1}. ${s.label}`))),
    state.actions ? actionButtons(item) : null,
    item.analysis.results.length ? analysisTable(item) : null,
    el("h3", {}, "Over the rollout"),
    el("div", { class: "legend" }, legend),
    chartsBox(item),
    item.history.length ? historyTable(item) : null,
  );
  const old = document.getElementById(card.id);
  if (old) old.replaceWith(card);
  else document.getElementById("deployments").append(card);
}

function chartsBox(item) {
  return el("div", { class: "charts", "data-testid": "charts" }, analysisCharts(item), prometheusCharts(item));
}

// New Prometheus data redraws the charts only (not the whole card, so buttons stay put).
function renderCharts(item) {
  const old = document.getElementById(cardId(item.key))?.querySelector(".charts");
  if (old) old.replaceWith(chartsBox(item));
  else renderCard(item);
}

function analysisTable(item) {
  const a = item.analysis;
  return el("div", {},
    el("h3", {}, `Analysis (last run ${a.lastRun ? clock(Date.parse(a.lastRun) / 1000) : "–"}; failures ${a.consecutiveFailures}/${a.failureLimit ?? "?"})`),
    el("table", { "data-testid": "analysis" },
      el("tr", {}, el("th", {}, "metric"), el("th", {}, "verdict"), el("th", {}, "value"), el("th", {}, "threshold"), el("th", {}, "message")),
      a.results.map((r) => el("tr", {},
        el("td", {}, r.metric), el("td", { class: "verdict-" + r.verdict }, r.verdict),
        el("td", {}, format(r.value, metricUnit(r.metric))), el("td", {}, format(r.threshold, metricUnit(r.metric))),
        el("td", {}, r.message)))));
}

function historyTable(item) {
  return el("div", {},
    el("h3", {}, "History"),
    el("table", { "data-testid": "history" },
      el("tr", {}, el("th", {}, "#"), el("th", {}, "revision"), el("th", {}, "image"), el("th", {}, "outcome"), el("th", {}, "at"), el("th", {}, "reason")),
      item.history.map((h, i) => el("tr", {},
        el("td", {}, i + 1), el("td", {}, h.revision), el("td", {}, h.image),
        el("td", { class: h.outcome === "Promoted" ? "verdict-Pass" : "verdict-Fail" }, h.outcome),
        el("td", {}, clock(Date.parse(h.at) / 1000)), el("td", {}, h.reason)))));
}

// ---- actions (only drawn when the server was started with --enable-actions) -----------------
const ACTIONS = [
  ["promote", "Promote"], ["promote-full", "Promote fully"], ["pause", "Pause"],
  ["resume", "Resume"], ["abort", "Abort"], ["retry", "Retry"],
];

function actionButtons(item) {
  const result = el("span", { class: "action-result", "data-testid": "action-result" }, state.actionResults.get(item.key) || "");
  const buttons = ACTIONS.map(([action, label]) => {
    const button = el("button", { type: "button", "data-action": action }, label);
    button.addEventListener("click", () => act(item, action));
    return button;
  });
  return el("div", { class: "actions" }, el("h3", {}, "Actions"), buttons, result);
}

async function act(item, action) {
  state.actionResults.set(item.key, `${action}: waiting for the operator…`);
  renderCard(state.items.get(item.key));
  let text;
  try {
    const response = await fetch(`/api/modeldeployments/${encodeURIComponent(item.namespace)}/${encodeURIComponent(item.name)}/actions`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ action }),
    });
    const body = await response.json();
    text = body.error ? `${action}: ${body.error}` : `${action}: ${body.result || "not acknowledged"} — ${body.message}`;
  } catch (err) {
    text = `${action}: ${err}`;
  }
  state.actionResults.set(item.key, text);
  if (state.items.has(item.key)) renderCard(state.items.get(item.key));
}

// ---- data from the server ------------------------------------------------------------------
async function loadCharts(key) {
  const item = state.items.get(key);
  if (!item) return;
  state.chartsFetchedAt.set(key, Date.now());
  try {
    const response = await fetch(`/api/modeldeployments/${encodeURIComponent(item.namespace)}/${encodeURIComponent(item.name)}/charts`);
    const body = await response.json();
    state.charts.set(key, response.ok ? body : { error: body.error || `HTTP ${response.status}` });
  } catch (err) {
    state.charts.set(key, { error: `charts: ${err}` });
  }
  if (state.items.has(key)) renderCharts(state.items.get(key));
}

function chartsDue(key) {
  return Date.now() - (state.chartsFetchedAt.get(key) || 0) >= CHART_REFRESH_MS;
}

function handle(message) {
  if (message.type === "reset") {
    state.actions = message.actions;
    const mode = document.getElementById("mode");
    mode.textContent = message.actions ? "actions enabled" : "read-only";
    mode.className = "badge" + (message.actions ? " actions" : "");
    document.getElementById("scope").textContent = message.scope;
    showProblem(message.problem);
    state.items = new Map(message.items.map((i) => [i.key, i]));
    document.getElementById("deployments").replaceChildren();
    for (const item of message.items) renderCard(item);
  } else if (message.type === "upsert") {
    state.items.set(message.item.key, message.item);
    renderCard(message.item);
    if (chartsDue(message.item.key)) loadCharts(message.item.key);
  } else if (message.type === "delete") {
    state.items.delete(message.key);
    document.getElementById(cardId(message.key))?.remove();
  } else if (message.type === "problem") {
    showProblem(message.problem);
  }
  document.getElementById("empty").hidden = state.items.size > 0;
}

function showProblem(problem) {
  const node = document.getElementById("problem");
  node.hidden = !problem;
  node.textContent = problem || "";
}

function connect() {
  const connection = document.getElementById("connection");
  const events = new EventSource("/api/events");
  events.onopen = () => { connection.textContent = "live"; };
  events.onerror = () => { connection.textContent = "reconnecting…"; }; // EventSource retries by itself
  events.onmessage = (event) => handle(JSON.parse(event.data));
}

connect();
setInterval(() => { for (const key of state.items.keys()) if (chartsDue(key)) loadCharts(key); }, CHART_REFRESH_MS);
