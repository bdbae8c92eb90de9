// The dashboard's page, style sheet and script: plain HTML, CSS and
// JavaScript, served as they are (no build step). The script renders every
// value with textContent, never as HTML.

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(base: string, title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title}</title>
<link rel="stylesheet" href="${escapeHtml(base)}/app.css">
</head>
${body}
</html>`;
}

/** The login form (the answer to an unauthenticated GET, with status 401). */
export function loginPage(base: string, failed: boolean): string {
  const refused =
    '<p class="error" role="alert" id="login-error">That token is not the admin token.</p>';
  return page(
    base,
    "Sign in · aftercommit dashboard",
    `<body>
<main class="login">
<h1>aftercommit dashboard</h1>
<form method="post" action="${escapeHtml(base)}/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
${failed ? refused : ""}
<button type="submit">Sign in</button>
</form>
</main>
</body>`,
  );
}

// A scrolling table with an empty body, then the note shown while it is
// empty: the script fills them in. A "Fields" column is shown on demand.
function table(name: string, label: string, columns: string, empty: string) {
  const th = columns.split(",").map((c) =>
    c === "Action"
      ? `<th scope="col"><span class="visually-hidden">Action</span></th>`
      : `<th scope="col"${c === "Fields" ? ' class="fields"' : ""}>${c}</th>`
  );
  return `<div class="scroll" role="region" aria-labelledby="${label}" tabindex="0">
<table id="${name}-table">
<thead><tr>${th.join("")}</tr></thead>
<tbody></tbody>
</table>
</div>
<p id="${name}-empty" class="muted">${empty}</p>`;
}

// The columns of a parked event or dead letter after its type or queue.
const ROW = "Attempts,Last error,Age,Fields,Action";

/** The dashboard page; the script fills it in. */
export function dashboardPage(
  base: string,
  refreshSeconds: number,
  signedIn: boolean,
): string {
  const b = escapeHtml(base);
  const signOut =
    `<form method="post" action="${b}/logout"><button type="submit" class="secondary">Sign out</button></form>`;
  const queues = "Queue,Created,Active,Retry,Failed,Dead letters";
  return page(
    base,
    "aftercommit dashboard",
    `<body data-base="${b}" data-refresh="${refreshSeconds}">
<header class="top">
<h1>aftercommit dashboard</h1>
<p id="updated" class="muted">Connecting…</p>
<label class="toggle"><input type="checkbox" id="show-fields"> Show event and job fields (may hold personal data)</label>
${signedIn ? signOut : ""}
</header>
<p id="result" role="status" aria-live="polite" class="result" hidden></p>
<p id="problem" role="alert" class="error" hidden></p>
<main>
<section aria-labelledby="flow-h">
<h2 id="flow-h">Flow</h2>
<dl class="tiles">
<div><dt>Events published /s</dt><dd id="events-rate">–</dd></div>
<div><dt>Jobs completed /s</dt><dd id="jobs-rate">–</dd></div>
<div><dt>Commit → job start p50</dt><dd id="p50">–</dd></div>
<div><dt>Commit → job start p99</dt><dd id="p99">–</dd></div>
</dl>
<div class="charts">
<figure>
<figcaption>Throughput, last <span class="window">5</span> min <span class="key"><i class="k1"></i>events/s <i class="k2"></i>jobs/s</span></figcaption>
<svg id="rate-chart" role="img" aria-label="Throughput chart: no data yet" viewBox="0 0 600 160" preserveAspectRatio="none"></svg>
</figure>
<figure>
<figcaption>Commit → job start latency, last <span class="window">5</span> min <span class="key"><i class="k1"></i>p50 <i class="k2"></i>p99</span></figcaption>
<svg id="latency-chart" role="img" aria-label="Latency chart: no data yet" viewBox="0 0 600 160" preserveAspectRatio="none"></svg>
</figure>
</div>
</section>
<section aria-labelledby="outbox-h">
<h2 id="outbox-h">Outbox</h2>
<p id="outbox-off" class="muted" hidden>No outbox is configured.</p>
<div id="outbox-body">
<dl class="tiles">
<div><dt>Pending</dt><dd id="pending">–</dd></div>
<div><dt>In flight</dt><dd id="in-flight">–</dd></div>
<div><dt>Parked</dt><dd id="parked">–</dd></div>
<div><dt>Oldest pending</dt><dd id="oldest">–</dd></div>
<div><dt>Delivered</dt><dd id="done">–</dd></div>
</dl>
<h3 id="parked-h">Parked events</h3>
<div class="actions">
<label for="requeue-type">Type</label>
<select id="requeue-type"></select>
<button type="button" id="requeue-type-button">Requeue this type</button>
<button type="button" id="requeue-all-button">Requeue all</button>
</div>
${table("parked", "parked-h", `Type,${ROW}`, "No parked events.")}
</div>
</section>
<section aria-labelledby="jobs-h">
<h2 id="jobs-h">Jobs</h2>
<p id="jobs-off" class="muted" hidden>No job queue is configured.</p>
<div id="jobs-body">
${table("queues", "jobs-h", queues, "No queues yet.")}
<h3 id="dead-h">Dead letters</h3>
${table("dead", "dead-h", `Queue,${ROW}`, "No dead letters.")}
</div>
</section>
</main>
<dialog id="confirm" aria-labelledby="confirm-text">
<form method="dialog">
<p id="confirm-text"></p>
<div class="dialog-buttons">
<button value="cancel" class="secondary" id="confirm-cancel">Cancel</button>
<button value="ok" id="confirm-ok">Confirm</button>
</div>
</form>
</dialog>
<script src="${b}/app.js" defer></script>
</body>`,
  );
}

/** The style sheet: one column on a phone, a grid on a wide screen. */
export const STYLE = `:root {
  --fg: #1b1f24; --muted: #4f5964; --bg: #ffffff; --panel: #f3f5f7;
  --line: #c9d1d9; --accent: #0b5cad; --accent-fg: #ffffff;
  --c1: #0b5cad; --c2: #b3261e; --error-bg: #fdecea; --ok-bg: #e6f4ea;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --fg: #e6edf3; --muted: #aab4be; --bg: #0d1117; --panel: #161b22;
    --line: #3d444d; --accent: #6cb6ff; --accent-fg: #0d1117;
    --c1: #6cb6ff; --c2: #ff8e86; --error-bg: #3b1d1b; --ok-bg: #12301d;
  }
}
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
main { padding: 0 1rem 2rem; display: grid; gap: 1.5rem; max-width: 1400px; margin: 0 auto; }
main > section { min-width: 0; }
@media (min-width: 1100px) {
  main { grid-template-columns: 1fr 1fr; }
  main > section:first-child { grid-column: 1 / -1; }
}
.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem;
  padding: .75rem 1rem; border-bottom: 1px solid var(--line); max-width: 1400px; margin: 0 auto 1rem; }
.top h1 { font-size: 1.25rem; margin: 0; }
.top form { margin-left: auto; }
h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .5rem; }
.muted { color: var(--muted); margin: .25rem 0; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr)); gap: .5rem; margin: 0; }
.tiles div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
.tiles dt { font-size: .85rem; color: var(--muted); }
.tiles dd { margin: 0; font-size: 1.5rem; font-variant-numeric: tabular-nums; }
.charts { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 22rem), 1fr)); margin-top: 1rem; }
figure { margin: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .5rem; }
figcaption { font-size: .9rem; margin-bottom: .25rem; }
.key { color: var(--muted); white-space: nowrap; }
.key i { display: inline-block; width: .9em; height: .25em; vertical-align: middle; margin: 0 .2em 0 .6em; }
.key .k1 { background: var(--c1); } .key .k2 { background: var(--c2); }
svg { width: 100%; height: 160px; display: block; }
svg .l1 { stroke: var(--c1); } svg .l2 { stroke: var(--c2); stroke-dasharray: 6 3; }
svg polyline { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; }
svg .grid { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
svg text { fill: var(--muted); font-size: 12px; }
.scroll { overflow-x: auto; position: relative; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.error-text { min-width: 12rem; max-width: 28rem; overflow-wrap: anywhere; }
td code { font-size: .85rem; overflow-wrap: anywhere; }
td.fields { min-width: 14rem; }
body:not(.show-fields) .fields { display: none; }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: .5rem; }
button, select, input { font: inherit; }
button { background: var(--accent); color: var(--accent-fg); border: 1px solid var(--accent);
  border-radius: 4px; padding: .35rem .8rem; cursor: pointer; min-height: 2.25rem; }
button.secondary { background: transparent; color: var(--fg); border-color: var(--line); }
button:disabled { opacity: .55; cursor: not-allowed; }
select, input { color: var(--fg); background: var(--bg); border: 1px solid var(--muted); border-radius: 4px; padding: .3rem .5rem; min-height: 2.25rem; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.result, .error { margin: 0 auto 1rem; max-width: 1400px; padding: .5rem 1rem; border-radius: 4px; }
.result { background: var(--ok-bg); } .error { background: var(--error-bg); }
dialog { border: 1px solid var(--line); border-radius: 8px; color: var(--fg); background: var(--bg); max-width: min(32rem, 92vw); }
dialog::backdrop { background: rgba(0, 0, 0, .45); }
.dialog-buttons { display: flex; justify-content: flex-end; gap: .5rem; }
.toggle { font-size: .95rem; display: inline-flex; align-items: center; gap: .4rem; }
.login { max-width: 22rem; margin: 10vh auto; padding: 1rem; display: block; }
.login form { display: grid; gap: .5rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

/** The page's script: polls the snapshot, draws it, runs the actions. */
export const SCRIPT = String.raw`"use strict";
(() => {
  const base = document.body.dataset.base;
  const refreshMs = Number(document.body.dataset.refresh) * 1000;
  const $ = (id) => document.getElementById(id);
  const showFields = $("show-fields");
  let timer;

  const fmtRate = (n) => n == null ? "–" : n < 10 ? n.toFixed(1) : String(Math.round(n));
  const fmtMs = (n) => n == null ? "–" : n < 10 ? n.toFixed(1) + " ms" : n < 10000 ? Math.round(n) + " ms" : (n / 1000).toFixed(1) + " s";
  const fmtAge = (s) => s == null ? "–" : s < 60 ? Math.floor(s) + " s" : s < 3600 ? Math.floor(s / 60) + " min"
    : s < 172800 ? Math.floor(s / 3600) + " h" : Math.floor(s / 86400) + " d";
  const plural = (n, one, many) => n + " " + (n === 1 ? one : many);
  // An element with these properties and children (a string is text; a
  // missing value, none).
  const el = (tag, props, ...children) => {
    const e = Object.assign(document.createElement(tag), props);
    e.append(...children.filter((child) => child != null));
    return e;
  };

  // Fills the "<name>-table" with one row per item, each cell [content,
  // class], and shows "<name>-empty" instead when there is none.
  function fill(name, rows, cells) {
    $(name + "-table").tBodies[0].replaceChildren(...rows.map((row) =>
      el("tr", {}, ...cells(row).map(([content, className]) => el("td", className ? { className } : {}, content)))));
    $(name + "-table").hidden = rows.length === 0;
    $(name + "-empty").hidden = rows.length !== 0;
  }
  const fields = (value) => [value === undefined ? "" : el("code", { textContent: JSON.stringify(value) }), "fields"];
  const button = (label, ariaLabel, onclick) => [el("button", { type: "button", textContent: label, ariaLabel, onclick })];

  function chart(svg, history, keys, unit, format) {
    const W = 600, H = 160, L = 46, B = 18, T = 8;
    const from = history[0]?.t ?? 0;
    const span = Math.max(1, (history.at(-1)?.t ?? 1) - from);
    const max = Math.max(0, ...history.flatMap((p) => keys.map((k) => p[k] ?? 0))) * 1.15 || 1;
    const x = (t) => L + (W - L - 4) * (t - from) / span;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const svgEl = (name, attributes, text = "") => {
      const e = document.createElementNS("http://www.w3.org/2000/svg", name);
      for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
      e.textContent = text;
      return e;
    };
    const parts = [0, 0.5, 1].flatMap((f) => [
      svgEl("line", { class: "grid", x1: L, x2: W, y1: y(max * f), y2: y(max * f) }),
      svgEl("text", { x: 2, y: y(max * f) + 4 }, format(max * f)),
    ]);
    parts.push(svgEl("text", { x: L, y: H - 3, "text-anchor": "start" }, history.length > 1 ? "−" + Math.round(span / 1000) + " s" : ""));
    parts.push(svgEl("text", { x: W - 2, y: H - 3, "text-anchor": "end" }, "now"));
    keys.forEach((k, i) => {
      const points = history.filter((p) => p[k] != null).map((p) => x(p.t).toFixed(1) + "," + y(p[k]).toFixed(1));
      parts.push(svgEl("polyline", { class: "l" + (i + 1), points: points.join(" "), "data-points": points.length }));
    });
    svg.replaceChildren(...parts);
    const last = history.at(-1);
    svg.setAttribute("aria-label", last
      ? keys.map((k) => k.replace(/Ms$|PerSecond$/, "") + " " + (last[k] == null ? "no data" : format(last[k]))).join(", ") + " " + unit + ", " + history.length + " samples"
      : "no data yet");
  }

  function render(s) {
    document.body.classList.toggle("show-fields", showFields.checked);
    const problems = s.unavailable || [];
    Object.assign($("problem"), { hidden: problems.length === 0, textContent: problems.join(" ") });
    const h = s.history;
    const now = h.at(-1) || {};
    const o = s.outbox;
    const count = (key) => o ? String(o[key]) : "–";
    const texts = {
      updated: "Updated " + new Date(s.at).toLocaleTimeString() + " · every " + (refreshMs / 1000) + " s",
      "events-rate": fmtRate(now.eventsPerSecond), "jobs-rate": fmtRate(now.jobsPerSecond),
      p50: fmtMs(now.p50Ms), p99: fmtMs(now.p99Ms),
      pending: count("pending"), "in-flight": count("inFlight"), parked: count("parked"), done: count("done"),
      oldest: o ? fmtAge(o.oldestPendingAgeSeconds) : "–",
    };
    for (const [id, text] of Object.entries(texts)) $(id).textContent = text;
    for (const w of document.querySelectorAll(".window")) w.textContent = String(Math.round(s.historySeconds / 60));
    chart($("rate-chart"), h, ["eventsPerSecond", "jobsPerSecond"], "per second", fmtRate);
    chart($("latency-chart"), h, ["p50Ms", "p99Ms"], "", fmtMs);
    for (const source of ["outbox", "jobs"]) {
      $(source + "-off").hidden = s.sources[source];
      $(source + "-body").hidden = !s.sources[source];
    }

    const parked = s.parkedEvents || [];
    fill("parked", parked, (e) => [
      [e.type], [String(e.attempts), "num"], [e.lastError || "", "error-text"], [fmtAge(e.ageSeconds), "num"], fields(e.payload),
      button("Requeue", "Requeue parked " + e.type + " event " + e.id, () =>
        act(() => "Requeue this parked " + e.type + " event?", "outbox/requeue", { ids: [e.id] }, "requeued")),
    ]);
    const select = $("requeue-type");
    const chosen = select.value;
    const types = [...new Set(parked.map((e) => e.type))].sort();
    select.replaceChildren(...types.map((t) => new Option(t, t, false, t === chosen)));
    for (const id of ["requeue-type", "requeue-type-button", "requeue-all-button"]) $(id).disabled = parked.length === 0 || o === null;

    fill("queues", s.queues || [], (q) =>
      [[q.name], ...["created", "active", "retry", "failed", "deadLetters"].map((k) => [String(q[k]), "num"])]);
    fill("dead", s.deadLetters || [], (d) => [
      [d.queue], [d.attempts == null ? "" : String(d.attempts), "num"], [d.error || "", "error-text"], [fmtAge(d.ageSeconds), "num"], fields(d.data),
      button("Retry", "Retry dead letter " + d.id + " of " + d.queue, () =>
        act(() => "Retry this dead letter of " + d.queue + "? It goes back to its queue as a new job.", "dead-letters/retry", { ids: [d.id] }, "retried")),
    ]);
  }

  const say = (id, text) => Object.assign($(id), { hidden: false, textContent: text });

  async function call(path, init) {
    const response = await fetch(base + "/api/" + path, { credentials: "same-origin", cache: "no-store", ...init });
    if (response.status === 401) {
      say("problem", "Signed out: reload the page and sign in again.");
      throw new Error("unauthorized");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
    return body;
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      render(await call("snapshot" + (showFields.checked ? "?fields=1" : "")));
    } catch (e) {
      if (e.message !== "unauthorized") say("problem", "The dashboard could not refresh: " + e.message);
    }
    timer = setTimeout(refresh, refreshMs);
  }

  function confirmDialog(text) {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      $("confirm-ok").focus();
    });
  }

  const post = (path, body) =>
    call(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  async function act(question, path, selection, verb) {
    try {
      const { matched } = await post(path, { ...selection, dryRun: true });
      if (matched === 0) return say("result", "Nothing to do: no match any more.");
      if (!(await confirmDialog(question(matched)))) return say("result", "Cancelled: nothing changed.");
      const n = (await post(path, selection))[verb];
      say("result", verb === "requeued"
        ? "Requeued " + plural(n, "parked event", "parked events") + "; the relay dispatches " + (n === 1 ? "it" : "them") + " at its next pass."
        : "Retried " + plural(n, "dead letter", "dead letters") + ": back in " + (n === 1 ? "its queue" : "their queues") + " as new jobs.");
    } catch (e) {
      if (e.message !== "unauthorized") say("result", "Failed: " + e.message);
    }
    refresh();
  }

  $("requeue-type-button").addEventListener("click", () => {
    const type = $("requeue-type").value;
    if (type) act((n) => "Requeue " + plural(n, "parked " + type + " event", "parked " + type + " events") + "?", "outbox/requeue", { type }, "requeued");
  });
  $("requeue-all-button").addEventListener("click", () =>
    act((n) => n === 1 ? "Requeue the parked event?" : "Requeue all " + n + " parked events?", "outbox/requeue", { all: true }, "requeued"));
  showFields.addEventListener("change", () => refresh());
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  refresh();
})();
`;
