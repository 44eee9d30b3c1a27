// runyard web UI: the runs list. Uses the helpers of app.js (loaded first, as `runyard`).
// Filters live in the URL (the page's links and GET form); this script keeps the first page live
// (re-queried through GraphQL when runs change), turns the time pickers into the URL's ISO times,
// and runs the bulk actions behind a confirmation dialog.
"use strict";
(() => {
  const {gql, el, seconds, statusBadge, formatWhen, zone} = runyard;
  // a <time> the page's zone setting redraws (app.js), like the server's `timetag`
  const timeOf = ts => (runyard.timeEl ? runyard.timeEl(ts) : runyard.when(ts));

  const RUN_FIELDS = "runId jobName status createdAt duration tags { key value }";
  const ARGS = `$statuses: [String!], $jobName: String, $tags: [TagInput!], $launchedBy: String,
      $createdAfter: Float, $createdBefore: Float`;
  const FILTER = `statuses: $statuses, jobName: $jobName, tags: $tags, launchedBy: $launchedBy,
      createdAfter: $createdAfter, createdBefore: $createdBefore`;
  const QUERY = `query(${ARGS}) { runs(${FILTER}, limit: 50) { runs { ${RUN_FIELDS} } } }`;
  // the chips' counts: a separate request, so a slow count never holds the list back
  const COUNTS = `query(${ARGS}) { runs(${FILTER}, limit: 1) { statusCounts { status count } } }`;

  const tagUrl = (k, v) => `/runs?tag=${encodeURIComponent(`${k}=${v}`)}`;

  function launchedBy(tags) {
    const get = k => (tags.find(t => t.key === k) || {}).value;
    for (const [kind, key] of [["user", "runyard/user"], ["schedule", "runyard/schedule"], ["sensor", "runyard/sensor"]]) {
      const name = get(key);
      if (name != null) return `${kind}:${name}`;
    }
    return null;
  }

  function row(r, checked) {
    const box = el("input", {type: "checkbox", "data-select": "", value: r.runId, "aria-label": `Select run ${r.runId.slice(0, 8)}`});
    box.checked = checked;
    const by = launchedBy(r.tags);
    return el("tr", {"data-run-id": r.runId, "data-run-status": r.status},
      el("td", {}, box),
      el("td", {}, el("a", {href: `/runs/${r.runId}`}, el("code", {}, r.runId.slice(0, 8)))),
      el("td", {}, el("a", {href: `/runs?job=${encodeURIComponent(r.jobName)}`}, r.jobName)),
      el("td", {}, statusBadge(r.status)),
      el("td", {}, by ? el("a", {href: `/runs?launched_by=${encodeURIComponent(by)}`}, by) : ""),
      el("td", {}, timeOf(r.createdAt)), el("td", {}, seconds(r.duration)),
      el("td", {}, ...r.tags.filter(t => !t.key.startsWith("runyard/"))
        .map(t => el("a", {"class": "tag", href: tagUrl(t.key, t.value)}, `${t.key}=${t.value}`))));
  }

  // ---- the status chips' counts ---------------------------------------------------------------------
  async function loadCounts(variables) {
    const selected = new Set(variables.statuses || []);
    try {
      const data = await gql(COUNTS, variables);
      const counts = new Map(data.runs.statusCounts.map(c => [c.status, c.count]));
      let all = 0, shown = 0;
      for (const [s, n] of counts) { all += n; if (!selected.size || selected.has(s)) shown += n; }
      document.querySelectorAll("#status-chips [data-chip]").forEach(chip => {
        chip.querySelector(".n").textContent = chip.dataset.chip ? (counts.get(chip.dataset.chip) || 0) : all;
      });
      document.getElementById("run-count").textContent = shown;
    } catch (e) { /* the chips keep their last counts */ }
  }

  // ---- live: re-query the first page when runs change ----------------------------------------------
  function liveRuns(table, selection, variables) {
    if (!table.hasAttribute("data-live-runs")) return null;
    let timer = null, running = false, again = false, last = 0;

    async function refresh() {
      if (running) { again = true; return; }
      running = true;
      last = Date.now();
      try {
        const data = await gql(QUERY, variables);
        const tbody = table.querySelector("tbody");
        if (data.runs.runs.length) {
          tbody.replaceChildren(...data.runs.runs.map(r => row(r, selection.has(r.runId))));
        }
        selection.changed();
        await loadCounts(variables);
      } catch (e) { /* keep the last rendering; the next change or poll tries again */ }
      finally {
        running = false;
        if (again) { again = false; schedule(); }
      }
    }
    // Debounced, and at most one re-query a second: a burst of changes (a bulk terminate, a busy
    // queue) costs one, and a list at a million runs is not re-counted on every change.
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, Math.max(250, 1000 - (Date.now() - last)));
    }

    if (typeof runyard.subscribe === "function") {
      runyard.subscribe("/live/runs", schedule);
      // what changed between rendering the page and the stream opening is not announced: look once
      refresh();
    } else {
      loadCounts(variables);
      setInterval(refresh, 3000);  // fallback until /live/runs exists (docs/webui.md, "Live updates")
    }
    return refresh;
  }

  // ---- selection and bulk actions ------------------------------------------------------------------
  function selectionOf(table) {
    const bar = document.getElementById("bulk-bar");
    const readOnly = document.body.dataset.readOnly === "true";
    const ids = new Set();
    const api = {
      has: id => ids.has(id),
      list: () => [...ids],
      clear() { ids.clear(); api.changed(); },
      changed() {
        // runs that left the page (deleted, filtered out) leave the selection
        const onPage = new Set([...table.querySelectorAll("[data-select]")].map(b => b.value));
        for (const id of [...ids]) if (!onPage.has(id)) ids.delete(id);
        table.querySelectorAll("[data-select]").forEach(b => { b.checked = ids.has(b.value); });
        const all = document.getElementById("select-all");
        all.checked = onPage.size > 0 && ids.size === onPage.size;
        document.getElementById("selected-count").textContent = `${ids.size} selected`;
        // a bulk action the principal's role does not allow stays disabled, with its title (data-needs)
        bar.querySelectorAll("[data-bulk]").forEach(b => { b.disabled = readOnly || !ids.size || runyard.forbidden(b); });
      },
    };
    table.addEventListener("change", ev => {
      const box = ev.target;
      if (box.id === "select-all") {
        table.querySelectorAll("[data-select]").forEach(b => { if (box.checked) ids.add(b.value); else ids.delete(b.value); });
      } else if (box.hasAttribute("data-select")) {
        if (box.checked) ids.add(box.value); else ids.delete(box.value);
      }
      api.changed();
    });
    api.changed();
    return api;
  }

  const ACTIONS = {
    terminate: {
      title: n => `Terminate ${n} run${n === 1 ? "" : "s"}?`,
      what: "Each run's launcher is asked to stop it: CANCELING now, CANCELED once its worker has stopped. " +
            "Runs that already finished are left as they are (reported below).",
      mutation: `mutation($ids: [ID!]!) { terminateRuns(runIds: $ids) { ok message results { runId ok message } } }`,
      field: "terminateRuns", done: "terminated",
    },
    reexecute: {
      title: n => `Re-execute ${n} run${n === 1 ? "" : "s"}?`,
      what: "A new run is launched for each, with the same job, config and tags, through the run coordinator " +
            "(queued if it queues). The runs themselves are not changed.",
      mutation: `mutation($ids: [ID!]!, $mode: String) { reexecuteRuns(runIds: $ids, mode: $mode) {
        ok message results { runId ok message run { runId } } } }`,
      field: "reexecuteRuns", done: "re-executed", mode: true,
    },
    delete: {
      title: n => `Delete ${n} run${n === 1 ? "" : "s"}?`,
      what: "Each run, its events and its captured logs are deleted for good. Runs that have not finished " +
            "cannot be deleted: terminate them first (they are refused and kept).",
      mutation: `mutation($ids: [ID!]!) { deleteRuns(runIds: $ids) { ok message results { runId ok message } } }`,
      field: "deleteRuns", done: "deleted",
    },
  };

  function showResults(action, payload) {
    const box = document.getElementById("bulk-results");
    const results = payload.results || [];
    const refused = results.filter(r => !r.ok);
    const okCount = results.length - refused.length;
    const head = results.length ? `${okCount} of ${results.length} run(s) ${action.done}.` : (payload.message || "Refused.");
    box.replaceChildren(el("p", {"class": refused.length || !results.length ? "error" : ""}, head),
      ...(refused.length ? [el("ul", {"id": "bulk-refusals"}, ...refused.map(r =>
        el("li", {"data-refused": r.runId}, el("a", {href: `/runs/${r.runId}`}, el("code", {}, r.runId.slice(0, 8))), `: ${r.message}`)))] : []),
      ...results.filter(r => r.ok && r.run).map(r =>
        el("p", {}, "New run ", el("a", {href: `/runs/${r.run.runId}`}, el("code", {}, r.run.runId.slice(0, 8))))));
    box.hidden = false;
  }

  function bulkActions(selection, refreshSoon) {
    const dialog = document.getElementById("bulk-dialog");
    let current = null;
    document.querySelectorAll("#bulk-bar [data-bulk]").forEach(button => button.addEventListener("click", () => {
      const ids = selection.list();
      if (!ids.length) return;
      current = {name: button.dataset.bulk, ids};
      const action = ACTIONS[current.name];
      document.getElementById("bulk-title").textContent = action.title(ids.length);
      document.getElementById("bulk-what").textContent = action.what;
      document.getElementById("bulk-mode").hidden = !action.mode;
      dialog.showModal();
    }));
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "confirm" || !current) return;
      const action = ACTIONS[current.name];
      const variables = {ids: current.ids};
      if (action.mode) variables.mode = dialog.querySelector("select[name=mode]").value;
      const name = current.name;
      current = null;
      let results = [];
      try {
        const payload = (await gql(action.mutation, variables))[action.field];
        results = payload.results || [];
        showResults(action, payload);
      } catch (e) {
        showResults(action, {results: [], message: e.message});
      }
      selection.clear();
      refreshSoon(name, results);
    });
  }

  // ---- time range: datetime pickers in the page's zone (the "Times in" choice) <-> the URL's UTC ISO times
  const offsetSeconds = (ts, tz) => {  // "+05:30" at instant ts in tz -> 19800
    const m = /([+-])(\d{2}):(\d{2})$/.exec(formatWhen(ts, tz));
    return m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3]) * 60) : 0;
  };
  // a wall time in tz ("2026-11-30T08:33:01") -> epoch seconds; asked twice so a time next to a
  // daylight-saving switch takes the offset in force at that time, not at the first guess
  function wallToEpoch(value, tz) {
    const [d, t = "00:00:00"] = value.split("T");
    const [y, mo, da] = d.split("-").map(Number);
    const [h, mi, se = 0] = t.split(":").map(Number);
    const asUtc = Date.UTC(y, mo - 1, da, h, mi, se) / 1000;
    const first = asUtc - offsetSeconds(asUtc, tz);
    return asUtc - offsetSeconds(first, tz);
  }

  function timePickers(form) {
    if (!form) return;
    const tz = zone();
    form.querySelectorAll("[data-time-for]").forEach(picker => {
      const hidden = form.querySelector(`input[name=${picker.dataset.timeFor}]`);
      const ms = hidden.value ? Date.parse(hidden.value) : NaN;
      if (!isNaN(ms)) picker.value = formatWhen(ms / 1000, tz).slice(0, 19).replace(" ", "T");
      picker.title = `in ${tz}`;
    });
    form.addEventListener("submit", () => {
      form.querySelectorAll("[data-time-for]").forEach(picker => {
        const hidden = form.querySelector(`input[name=${picker.dataset.timeFor}]`);
        hidden.value = picker.value
          ? new Date(wallToEpoch(picker.value, tz) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
      });
      // empty fields stay out of the URL, so shared links carry only the filters in use
      form.querySelectorAll("input[name]").forEach(input => { if (!input.value) input.disabled = true; });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.getElementById("runs");
    if (!table) return;
    timePickers(document.getElementById("run-filters"));
    const selection = selectionOf(table);
    const variables = JSON.parse(table.dataset.filter || "{}");
    const refresh = liveRuns(table, selection, variables);
    if (!refresh) loadCounts(variables);  // a live first page loads its counts with each refresh
    bulkActions(selection, (name, results) => {
      if (refresh) { refresh(); return; }
      loadCounts(variables);
      // an older page is not live: drop the rows of deleted runs, the rest show on the next visit
      if (name === "delete") {
        results.filter(r => r.ok).forEach(r => { const tr = table.querySelector(`tr[data-run-id="${r.runId}"]`); if (tr) tr.remove(); });
        selection.changed();
      }
    });
  });
})();
