// The es console: renders the page its path names from the JSON API under /api/.
// Everything from the store is put in the page as text (never as HTML).
"use strict";

const app = document.getElementById("app");

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const enc = encodeURIComponent;
const streamHref = (type, id) => `/streams/${enc(type)}/${enc(id)}`;

async function api(path) {
  const res = await fetch("/api" + path, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

async function apiPost(path, body) {
  const res = await fetch("/api" + path, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(answer.error || res.statusText);
  return answer;
}

function show(...nodes) {
  app.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function failure(e) {
  return h("p", { class: "bad" }, "Error: " + e.message);
}

function pretty(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

function table(headers, rows, numeric = []) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((t, i) => h("th", { class: numeric.includes(i) ? "num" : null }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : null }, c))))));
}

// One event with its whole envelope and its payload as formatted JSON.
function eventCard(e, withStream) {
  const rows = [
    ["position", e.position],
    ["sequence", e.sequence],
    ["timestamp", e.timestamp],
  ];
  if (e.command_id) rows.push(["command id", e.command_id]);
  if (e.correlation_id) rows.push(["correlation id", h("a", { href: "/correlation/" + enc(e.correlation_id), class: "correlation" }, e.correlation_id)]);
  if (e.causation_id) rows.push(["causation id", e.causation_id]);
  if (e.tags && e.tags.length) rows.push(["tags", e.tags.map((t) => h("span", { class: "tag" }, t))]);
  const meta = e.metadata && Object.keys(e.metadata).length ? e.metadata : null;
  return h("div", { class: "event", "data-position": e.position },
    h("div", { class: "head" },
      h("span", { class: "type" }, `${e.type} v${e.version}`),
      withStream ? h("a", { href: streamHref(e.stream.type, e.stream.id) }, `${e.stream.type}/${e.stream.id}#${e.sequence}`) : null,
      h("span", { class: "muted" }, `#${e.position}`)),
    h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, v)])),
    meta ? [h("div", { class: "muted" }, "metadata"), pretty(meta)] : null,
    h("div", { class: "muted" }, "payload"),
    e.payload !== undefined ? pretty(e.payload) : h("pre", {}, `<binary, base64> ${e.payload_base64}`));
}

function logRow(e) {
  return h("tr", { "data-position": e.position },
    h("td", { class: "num" }, e.position),
    h("td", { class: "mono" }, e.timestamp),
    h("td", {}, h("a", { href: streamHref(e.stream.type, e.stream.id) }, `${e.stream.type}/${e.stream.id}`), "#" + e.sequence),
    h("td", {}, `${e.type} v${e.version}`),
    h("td", {}, e.correlation_id ? h("a", { href: "/correlation/" + enc(e.correlation_id) }, e.correlation_id) : ""),
    h("td", { class: "mono" }, e.payload !== undefined ? JSON.stringify(e.payload) : "<binary>"));
}

// ---- Streams: counts by aggregate type, search, paging.
async function streamsPage(params) {
  const type = params.get("type") || "";
  const q = params.get("q") || "";
  const search = h("input", { type: "search", name: "q", placeholder: "search type/id", value: q });
  const form = h("form", { class: "bar", onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (type) p.set("type", type);
    if (search.value) p.set("q", search.value);
    go("/?" + p);
  } }, search, h("button", { type: "submit" }, "Search"));
  const chips = h("div", { class: "chips" });
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Streams"), chips, form, list);
  api("/stream-types").then((types) => {
    const total = types.reduce((n, t) => n + t.streams, 0);
    chips.append(h("a", { href: "/" + (q ? "?q=" + enc(q) : ""), class: type ? null : "active" }, `all (${total})`));
    for (const t of types) {
      const p = new URLSearchParams({ type: t.type });
      if (q) p.set("q", q);
      chips.append(h("a", { href: "/?" + p, class: t.type === type ? "active" : null, "data-type": t.type }, `${t.type} (${t.streams})`));
    }
  }).catch((e) => chips.append(failure(e)));
  const query = new URLSearchParams();
  for (const k of ["type", "q", "after_type", "after_id"]) if (params.get(k)) query.set(k, params.get(k));
  try {
    const page = await api("/streams?" + query);
    const rows = page.streams.map((s) => [h("a", { href: streamHref(s.type, s.id) }, s.id), s.type, s.version]);
    const nav = h("div", { class: "bar" });
    if (params.get("after_type")) {
      const first = new URLSearchParams(query);
      first.delete("after_type"); first.delete("after_id");
      nav.append(h("a", { href: "/?" + first }, "« first page"));
    }
    if (page.next) {
      const next = new URLSearchParams(query);
      next.set("after_type", page.next.type); next.set("after_id", page.next.id);
      nav.append(h("a", { href: "/?" + next, class: "next" }, "next page »"));
    }
    list.replaceChildren(
      rows.length ? table(["id", "aggregate type", "version"], rows, [2]) : h("p", { class: "muted" }, "No streams match."),
      nav);
  } catch (e) { list.replaceChildren(failure(e)); }
}

// ---- One stream's events.
async function streamPage(type, id) {
  const list = h("div", {});
  const more = h("div", { class: "bar" });
  show(h("h1", {}, `${type} / ${id}`), h("p", { class: "muted", id: "version" }), list, more);
  async function load(from) {
    try {
      const page = await api(`/streams/${enc(type)}/${enc(id)}?from=${from}`);
      document.getElementById("version").textContent = `version ${page.version}`;
      list.append(...page.events.map((e) => eventCard(e, false)));
      more.replaceChildren(page.next_from ? h("button", { onclick: () => load(page.next_from) }, "more events") : "");
    } catch (e) { list.append(failure(e)); }
  }
  await load(1);
}

// ---- Every event of one correlation id (a workflow across streams).
async function correlationPage(id) {
  show(h("h1", {}, "Correlation " + id), h("p", { class: "muted" }, "Searching the log…"));
  try {
    const page = await api("/correlation/" + enc(id));
    const streams = new Set(page.events.map((e) => `${e.stream.type}/${e.stream.id}`));
    show(h("h1", {}, "Correlation " + id),
      h("p", { class: "muted" }, `${page.events.length} events in ${streams.size} streams${page.truncated ? " (only the first ones are shown)" : ""}`),
      page.events.map((e) => eventCard(e, true)));
  } catch (e) { show(h("h1", {}, "Correlation " + id), failure(e)); }
}

// ---- The log, newest first, with filters and live follow.
let source = null;
async function logPage(params) {
  const type = h("input", { name: "type", placeholder: "event type", value: params.get("type") || "" });
  const aggregate = h("input", { name: "aggregate", placeholder: "aggregate type", value: params.get("aggregate") || "" });
  const correlation = h("input", { name: "correlation", placeholder: "correlation id" });
  const follow = h("input", { type: "checkbox", id: "follow" });
  const status = h("span", { class: "muted" });
  const body = h("tbody", {});
  const more = h("div", { class: "bar" });
  const filters = h("form", { class: "bar", onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (type.value) p.set("type", type.value);
    if (aggregate.value) p.set("aggregate", aggregate.value);
    go("/log?" + p);
  } }, type, aggregate, h("button", { type: "submit" }, "Filter"));
  const search = h("form", { class: "bar", onsubmit: (ev) => {
    ev.preventDefault();
    if (correlation.value) go("/correlation/" + enc(correlation.value));
  } }, correlation, h("button", { type: "submit" }, "Find its events"));
  show(h("h1", {}, "Log"), filters, search,
    h("div", { class: "bar" }, h("label", {}, follow, " live follow"), status),
    h("table", {}, h("thead", {}, h("tr", {}, ["position", "timestamp", "stream", "type", "correlation", "payload"].map((t) => h("th", {}, t)))), body),
    more);
  const filter = new URLSearchParams();
  if (params.get("type")) filter.set("type", params.get("type"));
  if (params.get("aggregate")) filter.set("aggregate", params.get("aggregate"));
  let head = 0;
  async function load(before) {
    const p = new URLSearchParams(filter);
    if (before) p.set("before", before);
    try {
      const page = await api("/log?" + p);
      if (!before) head = page.head;
      body.append(...page.events.map(logRow));
      more.replaceChildren(page.next_before ? h("button", { onclick: () => load(page.next_before) }, "older events") : h("span", { class: "muted" }, "start of the log"));
    } catch (e) { more.replaceChildren(failure(e)); }
  }
  follow.addEventListener("change", () => {
    if (source) { source.close(); source = null; }
    status.textContent = "";
    if (!follow.checked) return;
    const p = new URLSearchParams(filter);
    p.set("from", head + 1);
    source = new EventSource("/api/follow?" + p);
    status.replaceChildren(h("span", { class: "live" }, "● following"));
    source.addEventListener("event", (m) => {
      const e = JSON.parse(m.data);
      head = Math.max(head, e.position);
      body.prepend(logRow(e));
    });
    source.addEventListener("error", (m) => {
      if (m.data) status.replaceChildren(h("span", { class: "bad" }, m.data));
    });
  });
  await load(null);
  if (params.has("follow")) { follow.checked = true; follow.dispatchEvent(new Event("change")); } // /log?follow
}

// ---- Projections and process managers: position, lag, a live chart of the lag.
const colors = ["#2457c5", "#d92d20", "#079455", "#dc6803", "#7a5af8", "#0e9384", "#c11574", "#475467"];
const lagHistory = new Map();
let timer = null;
function chart(metric, unit) {
  const w = 560, ht = 160, pad = 30;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", ht); svg.setAttribute("class", "chart");
  let max = 1;
  for (const samples of lagHistory.values()) for (const s of samples) max = Math.max(max, s[metric] || 0);
  const line = (x1, y1, x2, y2, color) => {
    const l = document.createElementNS(svg.namespaceURI, "line");
    Object.entries({ x1, y1, x2, y2, stroke: color, "stroke-width": 1 }).forEach(([k, v]) => l.setAttribute(k, v));
    svg.append(l);
  };
  line(pad, ht - pad, w - 8, ht - pad, "#c5cad3");
  const label = document.createElementNS(svg.namespaceURI, "text");
  label.setAttribute("x", 4); label.setAttribute("y", 14); label.setAttribute("font-size", 11);
  label.textContent = `${max} ${unit}`;
  svg.append(label);
  [...lagHistory.keys()].forEach((name, i) => {
    const samples = lagHistory.get(name);
    const pts = samples.map((s, j) => `${pad + (j * (w - pad - 8)) / 59},${ht - pad - ((s[metric] || 0) * (ht - pad - 20)) / max}`);
    const pl = document.createElementNS(svg.namespaceURI, "polyline");
    pl.setAttribute("points", pts.join(" "));
    pl.setAttribute("fill", "none");
    pl.setAttribute("stroke", colors[i % colors.length]);
    pl.setAttribute("stroke-width", 2);
    svg.append(pl);
  });
  return svg;
}

async function projectionsPage() {
  const tableBox = h("div", {});
  const charts = h("div", {});
  const letters = h("div", { id: "dead-letters" });
  show(h("h1", {}, "Projections and process managers"), tableBox, letters, charts);
  // Dead letters of every projection (ErrorPolicy::Park): listed; retried and skipped only
  // when the console runs with --allow-writes.
  async function deadLetters(names) {
    const rows = [];
    let writable = false;
    for (const name of names) {
      const page = await api(`/projections/${enc(name)}/dead-letters`).catch(() => null);
      if (!page) continue;
      writable = page.writable;
      for (const d of page.dead_letters) {
        const status = d.skipped ? `skipped: ${d.skipped}` : d.retry_requested ? "parked, retry requested" : "parked";
        const actions = !writable || d.skipped ? "" : h("span", {},
          h("button", { onclick: () => apiPost(`/projections/${enc(name)}/retry`, { key: d.key }).then(refresh, (e) => alert(e.message)) }, "retry key"),
          " ",
          h("button", { onclick: () => {
            const reason = prompt(`Why skip position ${d.position} of ${d.key}?`);
            if (reason) apiPost(`/projections/${enc(name)}/skip`, { key: d.key, position: d.position, reason }).then(refresh, (e) => alert(e.message));
          } }, "skip"));
        rows.push([name, d.key, d.position, d.event_type, status, d.error, actions]);
      }
    }
    letters.replaceChildren(...(rows.length ? [
      h("h2", {}, `Dead letters (${rows.length})`),
      writable ? "" : h("p", { class: "muted" }, "Read-only: start the console with --allow-writes to retry or skip them."),
      table(["projection", "key", "position", "type", "status", "error", ""], rows, [2]),
    ] : []));
  }
  async function refresh() {
    try {
      const page = await api("/projections");
      const rows = page.projections.map((p) => {
        const samples = lagHistory.get(p.name) || [];
        samples.push({ lag: p.lag, seconds: p.lag_seconds || 0 });
        if (samples.length > 60) samples.shift();
        lagHistory.set(p.name, samples);
        return [h("span", { class: "projection" }, p.name), p.kind, p.position, p.lag,
          p.lag_seconds === null ? "" : p.lag_seconds.toFixed(3),
          p.state_bytes === null ? "none" : `${p.state_bytes} bytes`];
      });
      tableBox.replaceChildren(
        h("p", { class: "muted" }, `head position ${page.head}`),
        rows.length ? table(["name", "kind", "position", "lag (events)", "lag (s)", "state"], rows, [2, 3, 4]) : h("p", { class: "muted" }, "No checkpoint is saved in this store."));
      await deadLetters(page.projections.filter((p) => p.kind === "projection").map((p) => p.name));
      if (rows.length) {
        const legend = h("div", { class: "legend" }, [...lagHistory.keys()].map((name, i) => {
          const swatch = h("i", {});
          swatch.style.background = colors[i % colors.length];
          return h("span", {}, swatch, name);
        }));
        charts.replaceChildren(h("h2", {}, "Lag, live (every 2 s)"), legend,
          h("div", { class: "bar" }, chart("lag", "events"), chart("seconds", "s")));
      }
    } catch (e) { tableBox.replaceChildren(failure(e)); }
  }
  await refresh();
  timer = setInterval(refresh, 2000);
}

// ---- Store health: verify on demand.
async function healthPage(params) {
  const out = h("div", {});
  const run = h("button", { onclick: async () => {
    run.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "Verifying (this reads the whole store)…"));
    try {
      const r = await api("/verify");
      out.replaceChildren(
        h("p", { class: r.consistent ? "ok" : "bad", id: "verdict" }, r.consistent ? "consistent" : `${r.problems} problems found`),
        table(["events", "streams", "snapshots", "checkpoints"], [[r.events, r.streams, r.snapshots, r.checkpoints]], [0, 1, 2, 3]),
        r.findings.length ? table(["where", "problem"], r.findings.map((f) => [f.location, f.problem])) : "");
    } catch (e) { out.replaceChildren(failure(e)); }
    run.disabled = false;
  } }, "Run verify");
  show(h("h1", {}, "Store health"), h("p", {}, "verify checks positions, sequences, stream heads, payloads, snapshots and checkpoints."), run, out);
  if (params.has("run")) run.click(); // /health?run: verify at once (a bookmark, a headless browser)
}

// ---- Routing.
function go(href) {
  window.history.pushState(null, "", href);
  route();
}

function route() {
  if (source) { source.close(); source = null; }
  if (timer) { clearInterval(timer); timer = null; }
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const section = parts[0] || "streams";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === section));
  if (section === "streams" && parts.length === 3) return streamPage(parts[1], parts[2]);
  if (section === "streams") return streamsPage(params);
  if (section === "log") return logPage(params);
  if (section === "correlation" && parts.length === 2) return correlationPage(parts[1]);
  if (section === "projections") return projectionsPage();
  if (section === "health") return healthPage(params);
  show(h("p", { class: "bad" }, "No such page."));
}

window.addEventListener("popstate", route);
api("/summary").then((s) => {
  document.getElementById("store").textContent = `${s.store} · head ${s.head_position}`;
}).catch(() => {});
route();
