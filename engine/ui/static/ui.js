// bspec ui: live parts of the pages. No inline scripts anywhere (the CSP forbids them).
"use strict";

const COLOURS = { succeeded: "#2e9e5b", running: "#2f7fd8", active: "#7a8ca5", failed: "#d64545",
  idle: "#8fc4a0", starting: "#e0a526", preempted: "#9b59b6", other: "#999999" };

// Confirmation before any action.
document.addEventListener("submit", (ev) => {
  const msg = ev.target.dataset && ev.target.dataset.confirm;
  if (msg && !window.confirm(msg)) { ev.preventDefault(); }
});

function getJSON(url) {
  return fetch(url, { credentials: "same-origin" }).then((r) => {
    if (!r.ok) { throw new Error(url + ": " + r.status); }
    return r.json();
  });
}

// Charts: counts (or nodes) by state over time, with uPlot.
const charts = [];
function setupChart(el) {
  const labels = el.dataset.labels.split(",");
  const opts = {
    width: Math.max(400, el.clientWidth || 800), height: 220,
    scales: { x: { time: true } },
    series: [{}].concat(labels.map((l) => ({ label: l, stroke: COLOURS[l] || "#555", width: 2 }))),
    axes: [{}, {}],
  };
  const empty = [[]].concat(labels.map(() => []));
  const plot = new uPlot(opts, empty, el);
  const chart = { el, plot, points: 0 };
  charts.push(chart);
  loadChart(chart);
}
function loadChart(chart) {
  return getJSON(chart.el.dataset.series).then((d) => {
    chart.plot.setData(d.series);
    chart.points = d.series[0].length;
    chart.el.dataset.points = String(chart.points);
  });
}

// Timeline: one row per node, one bar per task run (SVG, so each bar is an element).
let timelineBusy = false;
function drawTimeline(el) {
  if (timelineBusy) { return; }
  timelineBusy = true;
  getJSON(el.dataset.src).then((d) => {
    const NS = "http://www.w3.org/2000/svg";
    const rowH = 18, left = 150, width = Math.max(500, el.clientWidth || 900);
    const svg = document.createElementNS(NS, "svg");
    const height = Math.max(1, d.nodes.length) * rowH + 18;  // the rows, then the time axis
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    let t0 = Infinity, t1 = -Infinity;
    for (const b of d.bars) { t0 = Math.min(t0, b[1]); t1 = Math.max(t1, b[2]); }
    const span = Math.max(1, t1 - t0), scale = (width - left - 4) / span;
    d.nodes.forEach((n, i) => {
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", "2"); t.setAttribute("y", String(i * rowH + 13));
      t.textContent = n.length > 22 ? "…" + n.slice(-21) : n;
      svg.appendChild(t);
    });
    if (d.bars.length) {
      const clock = (t) => new Date(t * 1000).toLocaleTimeString();
      [[left, t0, "start"], [width - 4, t1, "end"]].forEach(([x, t, anchor]) => {
        const label = document.createElementNS(NS, "text");
        label.setAttribute("x", String(x)); label.setAttribute("y", String(height - 4));
        label.setAttribute("text-anchor", anchor);
        label.textContent = clock(t);
        svg.appendChild(label);
      });
    }
    for (const b of d.bars) {
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", String(left + (b[1] - t0) * scale));
      r.setAttribute("y", String(b[0] * rowH + 2));
      r.setAttribute("width", String(Math.max(1.5, (b[2] - b[1]) * scale)));
      r.setAttribute("height", String(rowH - 4));
      r.setAttribute("class", "bar bar-" + b[3]);
      r.dataset.task = b[4]; r.dataset.node = d.nodes[b[0]];
      const title = document.createElementNS(NS, "title");
      title.textContent = b[4] + " on " + d.nodes[b[0]] + " · " + b[3] + " · " +
        (b[2] - b[1]).toFixed(1) + " s" + (b[5] ? " · " + b[5] + " retries" : "");
      r.appendChild(title);
      svg.appendChild(r);
    }
    el.replaceChildren(svg);
    el.dataset.bars = String(d.bars.length);
  }).catch((e) => console.warn(e)).finally(() => { timelineBusy = false; });
}

// Live log tail: server-sent chunks of stdout/stderr, following while the task runs.
let logSource = null;
function followLog(pre, stream) {
  if (logSource) { logSource.close(); }
  pre.textContent = "";
  document.querySelectorAll("a.stream").forEach((a) => a.classList.toggle("on", a.dataset.stream === stream));
  const state = document.getElementById("log-state");
  const src = new EventSource(pre.dataset.src + "?stream=" + stream);
  logSource = src;
  if (state) { state.textContent = "following"; }
  src.addEventListener("chunk", (ev) => {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(JSON.parse(ev.data).text);
    if (atEnd) { pre.scrollTop = pre.scrollHeight; }
  });
  src.addEventListener("end", () => { src.close(); if (state) { state.textContent = "task completed"; } });
  src.addEventListener("problem", (ev) => { src.close(); if (state) { state.textContent = JSON.parse(ev.data).message; } });
  src.onerror = () => { src.close(); };
}

// Answers land in the order the person asked: a late answer to an older request for the
// same target is not swapped in, and a live refresh waits while a request the person made
// (sort, page, filter) is under way, so a refresh of the old view never lands after it.
let requestNo = 0;
const latestAsked = {};
const personPending = {};
function isTick(detail) {
  const cfg = detail.requestConfig;
  return Boolean(cfg && cfg.triggeringEvent && cfg.triggeringEvent.type === "tick");
}
document.addEventListener("htmx:beforeRequest", (ev) => {
  const id = ev.detail.target && ev.detail.target.id;
  if (!id) { return; }
  if (isTick(ev.detail) && personPending[id]) { ev.preventDefault(); return; }
  const no = ++requestNo;
  ev.detail.xhr.bspecNo = no;
  ev.detail.xhr.bspecTick = isTick(ev.detail);
  if (!ev.detail.xhr.bspecTick) {
    latestAsked[id] = no;
    personPending[id] = (personPending[id] || 0) + 1;
  }
});
document.addEventListener("htmx:afterRequest", (ev) => {
  const id = ev.detail.target && ev.detail.target.id;
  if (id && ev.detail.xhr && ev.detail.xhr.bspecTick === false) {
    personPending[id] = Math.max(0, (personPending[id] || 1) - 1);
  }
});
document.addEventListener("htmx:beforeSwap", (ev) => {
  const id = ev.detail.target && ev.detail.target.id;
  const no = ev.detail.xhr && ev.detail.xhr.bspecNo;
  if (id && no && no < (latestAsked[id] || 0)) { ev.detail.shouldSwap = false; }
});

// One event stream per page: each tick re-fetches the live fragments, charts and timeline.
function listen() {
  const live = document.getElementById("live");
  const es = new EventSource("/events");
  es.addEventListener("open", () => { live.className = "live-on"; });
  es.addEventListener("error", () => { live.className = "live-off"; });
  es.addEventListener("tick", () => {
    document.querySelectorAll("[data-live]").forEach((el) => htmx.trigger(el, "tick"));
    charts.forEach((c) => loadChart(c).catch((e) => console.warn(e)));
    const tl = document.getElementById("timeline");
    if (tl) { drawTimeline(tl); }
  });
  window.addEventListener("beforeunload", () => es.close());
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".chart[data-series]").forEach(setupChart);
  const tl = document.getElementById("timeline");
  if (tl) { drawTimeline(tl); }
  const pre = document.getElementById("log");
  if (pre) {
    document.querySelectorAll("a.stream").forEach((a) => a.addEventListener("click", (ev) => {
      ev.preventDefault(); followLog(pre, a.dataset.stream);
    }));
    followLog(pre, "stdout");
  }
  listen();
});
