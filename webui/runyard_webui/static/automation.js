// runyard web UI: schedules & sensors (the list and one instigator's page: toggles, dry runs, ticks
// kept live), code location reloads (jobs and status pages) and the status page kept current.
// Uses the helpers of app.js (loaded first, as `runyard`).
"use strict";
(() => {
  const {gql, el, timeEl} = runyard;

  // ---- markup shared with templates/_automation.html ---------------------------------------------
  const badge = s => el("span", {"class": `status status-${(s || "").toLowerCase()}`}, s || "");
  const runLink = id => el("a", {href: `/runs/${id}`}, el("code", {}, id.slice(0, 8)));

  function tickError(error) {
    if (!error) return document.createTextNode("");
    const i = error.indexOf("\n");
    const first = i < 0 ? error : error.slice(0, i);
    const rest = i < 0 ? "" : error.slice(i + 1);
    return el("details", {"class": "tick-error"}, el("summary", {"class": "error"}, first),
              ...(rest ? [el("pre", {"class": "traceback"}, rest)] : []));
  }

  const TICK_FIELDS = "id tickTime status runIds runKeys skipReason error runs { runId status }";

  // ---- toggles, dry runs and reloads (delegated: the status page redraws its buttons) ------------
  async function toggle(button) {
    const row = button.closest("[data-instigator]");
    const running = row.querySelector("[data-status]").textContent === "RUNNING";
    const kind = row.dataset.kind === "schedule" ? "Schedule" : "Sensor";
    const field = `${running ? "stop" : "start"}${kind}`;
    button.disabled = true;
    try {
      const data = await gql(`mutation($n: String!) { ${field}(name: $n) { ok message instigator { status } } }`,
                             {n: row.dataset.instigator});
      const p = data[field];
      if (!p.ok) throw new Error(p.message);
      runyard.setStatus(row, p.instigator.status);
      button.textContent = p.instigator.status === "RUNNING" ? "Turn off" : "Turn on";
    } catch (e) { alert(e.message); } finally { button.disabled = false; }
  }

  function dryRunTarget(row) {
    const holder = row.tagName === "TR"
      ? document.querySelector(`tr[data-dry-run-for="${CSS.escape(row.dataset.instigator)}"]`) : null;
    if (holder) holder.hidden = false;
    return holder ? holder.querySelector("[data-dry-run-result]") : document.getElementById("dry-run");
  }

  function renderDryRun(target, p, timezone) {
    const parts = [];
    if (!p.ok) {
      parts.push(el("p", {"class": "error", "data-dry-run-outcome": "refused"}, p.message || "the dry run failed"));
    } else {
      const what = p.kind === "schedule"
        ? ["Evaluated for its next tick, ", timeEl(p.tickTime, "when", timezone || null)] : ["Evaluated now with its stored cursor ",
                                                                    el("code", {}, p.cursorBefore ?? "(none)")];
      parts.push(el("p", {"class": "muted"}, "Dry run: nothing was launched or stored. ", ...what, "."));
      if (p.error) {
        parts.push(el("p", {"class": "error", "data-dry-run-outcome": "error"}, `It raised: ${p.error}`));
        if (p.traceback) parts.push(el("pre", {"class": "traceback"}, p.traceback));
      } else if (p.skipReason) {
        parts.push(el("p", {"data-dry-run-outcome": "skip"}, "It would skip: ", el("strong", {}, p.skipReason)));
      } else if (!p.runRequests.length) {
        parts.push(el("p", {"data-dry-run-outcome": "nothing"}, "It would launch nothing."));
      } else {
        parts.push(el("p", {"data-dry-run-outcome": "runs"}, `It would launch ${p.runRequests.length} run${p.runRequests.length === 1 ? "" : "s"}:`));
        parts.push(el("table", {"class": "run-requests"},
          el("thead", {}, el("tr", {}, el("th", {}, "Job"), el("th", {}, "Run key"), el("th", {}, "Tags"), el("th", {}, "Run config"))),
          el("tbody", {}, ...p.runRequests.map(r => el("tr", {"data-run-request": r.runKey || ""},
            el("td", {}, r.jobName), el("td", {}, el("code", {}, r.runKey || "")),
            el("td", {}, ...r.tags.map(t => el("span", {"class": "tag"}, `${t.key}=${t.value}`))),
            el("td", {}, el("pre", {"class": "config"}, JSON.stringify(r.runConfig, null, 2))))))));
      }
      if (p.kind === "sensor" && p.cursor !== p.cursorBefore) {
        parts.push(el("p", {"class": "muted"}, "Its cursor would become ", el("code", {}, p.cursor ?? "(none)"), " (not stored)."));
      }
    }
    target.replaceChildren(...parts);
    target.hidden = false;
  }

  async function dryRun(button) {
    const row = button.closest("[data-instigator]");
    const target = dryRunTarget(row);
    button.disabled = true;
    target.replaceChildren(el("p", {"class": "muted"}, "Evaluating…"));
    target.hidden = false;
    try {
      const data = await gql(`mutation($k: String!, $n: String!) { dryRunInstigator(kind: $k, name: $n) {
        ok message code kind tickTime skipReason error traceback cursorBefore cursor
        runRequests { jobName runKey runConfig tags { key value } } } }`, {k: row.dataset.kind, n: row.dataset.instigator});
      renderDryRun(target, data.dryRunInstigator, row.dataset.timezone);
    } catch (e) {
      renderDryRun(target, {ok: false, message: e.message});
    } finally { button.disabled = false; }
  }

  async function reload(button) {
    button.disabled = true;
    try {
      const data = await gql(`mutation($n: String!) { reloadLocation(name: $n) { ok message } }`, {n: button.dataset.reload});
      if (!data.reloadLocation.ok) alert(data.reloadLocation.message);
      window.location.reload();
    } catch (e) { alert(e.message); button.disabled = false; }
  }

  document.addEventListener("click", event => {
    const button = event.target.closest("button");
    if (!button || button.disabled) return;
    if (button.matches("[data-toggle]")) toggle(button);
    else if (button.matches("[data-dry-run]")) dryRun(button);
    else if (button.matches("[data-reload]")) reload(button);
  });

  // ---- live: pushed by /live/ticks (the page then re-queries GraphQL), else polled ------------------
  // While the stream is not open (or runyard.subscribe is missing) a poll keeps the page current: every
  // POLL_MS without an open stream, every SAFETY_MS with one (a missed message costs at most that much).
  const POLL_MS = 3000, SAFETY_MS = 15000;

  function keepLive(path, refresh, stateNode) {
    let running = false, again = false;
    const run = async () => {
      if (running) { again = true; return; }
      running = true;
      try { await refresh(); if (stateNode) stateNode.textContent = "live"; }
      catch (e) { if (stateNode) stateNode.textContent = `updates paused: ${e.message}`; }
      finally {
        running = false;
        if (again) { again = false; run(); }
      }
    };
    let pushed = false;
    if (typeof runyard.subscribe === "function") {
      try {
        // an open stream is trusted (a quiet one sends nothing); a broken one falls back to the poll
        runyard.subscribe(path, () => { pushed = true; run(); },
                          {onOpen: () => { pushed = true; }, onError: () => { pushed = false; }});
      } catch (e) { /* no push: the poll below does it */ }
    }
    let last = Date.now();
    setInterval(() => {
      const wait = pushed ? SAFETY_MS : POLL_MS;
      if (Date.now() - last >= wait) { last = Date.now(); run(); }
    }, 1000);
    if (stateNode) stateNode.textContent = "live";
  }

  // the list: each row's status, toggle label and last ticks
  function liveList(table) {
    const query = `{ schedules { name kind status ticks(limit: 5) { ${TICK_FIELDS} } }
                     sensors { name kind status ticks(limit: 5) { ${TICK_FIELDS} } } }`;
    keepLive("/live/ticks", async () => {
      const data = await gql(query);
      for (const i of [...data.schedules, ...data.sensors]) {
        const row = table.querySelector(`tr[data-instigator="${CSS.escape(i.name)}"][data-kind="${i.kind}"]`);
        if (!row) continue;
        runyard.setStatus(row, i.status);
        const button = row.querySelector("[data-toggle]");
        // a toggle under way keeps its label until it answers; one the role may not use follows the status
        if (button && (!button.disabled || runyard.forbidden(button))) {
          button.textContent = i.status === "RUNNING" ? "Turn off" : "Turn on";
        }
        const cell = row.querySelector("[data-ticks]");
        const more = cell.querySelector(".small-link");
        cell.replaceChildren(...(i.ticks.length ? i.ticks.map(t => el("div", {"class": "tick", "data-tick-id": String(t.id)},
          timeEl(t.tickTime), " ", badge(t.status), " ", ...t.runIds.flatMap(id => [runLink(id), " "]),
          ...(t.skipReason ? [el("span", {"class": "muted"}, t.skipReason)] : []), tickError(t.error)))
          : [el("span", {"class": "muted"}, "none")]), ...(more ? [more] : []));
      }
    }, document.getElementById("automation-live"));
  }

  // one schedule or sensor: its status and, on the newest page, its ticks
  function liveInstigator(root) {
    const {kind, instigator: name} = root.dataset;
    const limit = Number(root.dataset.pageSize) || 20;
    const query = `query($k: String!, $n: String!, $limit: Int) { instigator(kind: $k, name: $n) {
      status tickPage(limit: $limit) { older newer ticks { ${TICK_FIELDS} } } } }`;
    const tbody = root.querySelector("#ticks tbody");
    keepLive(`/live/ticks?instigator=${encodeURIComponent(name)}`, async () => {
      const data = await gql(query, {k: kind, n: name, limit});
      const i = data.instigator;
      if (!i) return;
      runyard.setStatus(root.querySelector("h1"), i.status);
      const button = root.querySelector("[data-toggle]");
      if (button && (!button.disabled || runyard.forbidden(button))) {
        button.textContent = i.status === "RUNNING" ? "Turn off" : "Turn on";
      }
      const page = i.tickPage;
      tbody.replaceChildren(...(page.ticks.length ? page.ticks.map(t => el("tr", {"data-tick-id": String(t.id)},
        el("td", {"class": "muted"}, `#${t.id}`), el("td", {}, timeEl(t.tickTime)), el("td", {}, badge(t.status)),
        el("td", {}, ...t.runIds.flatMap(id => {
          const run = t.runs.find(r => r.runId === id);
          return [runLink(id), ...(run ? [" ", badge(run.status)] : []), el("br")];
        }), ...(t.runKeys.length ? [el("span", {"class": "muted"}, `keys: ${t.runKeys.join(", ")}`)] : [])),
        el("td", {}, ...(t.skipReason ? [el("span", {"class": "muted"}, t.skipReason)] : []), tickError(t.error))))
        : [el("tr", {"class": "empty"}, el("td", {colspan: "5"}, "No ticks yet."))]));
      const pager = root.querySelector("#tick-pager");
      pager.replaceChildren(...(page.older != null
        ? [el("a", {id: "older-ticks", href: `${window.location.pathname}?before=${page.older}`}, "Older ›")] : []));
    }, document.getElementById("ticks-live"));
  }

  // the status page: the daemon's heartbeats and the locations, redrawn from the page itself
  function liveStatus(section) {
    const node = () => document.getElementById("status-live");
    setInterval(async () => {
      if (document.querySelector("#status-page button:disabled")) return;  // a reload is under way
      try {
        const resp = await fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}});
        if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
        const fresh = new DOMParser().parseFromString(await resp.text(), "text/html").getElementById("status-page");
        if (!fresh) return;
        section.replaceChildren(...fresh.childNodes);
        runyard.redrawTimes(section);
        node().textContent = `updated ${runyard.clock(Date.now() / 1000)}`;
      } catch (e) { node().textContent = `updates paused: ${e.message}`; }
    }, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.querySelector("[data-live-automation]");
    if (table) liveList(table);
    const one = document.getElementById("instigator");
    if (one && one.dataset.live === "true") liveInstigator(one);
    const status = document.querySelector("[data-live-status]");
    if (status) liveStatus(status);
  });
})();
