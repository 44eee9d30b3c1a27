// runyard web UI: keeps server-rendered pages live through the GraphQL API at /graphql.
"use strict";
const runyard = (() => {
  async function gql(query, variables) {
    const resp = await fetch("/graphql", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({query, variables}),
    });
    const body = await resp.json().catch(() => ({errors: [{message: `HTTP ${resp.status}`}]}));
    if (body.errors && body.errors.length) throw new Error(body.errors.map(e => e.message).join("; "));
    return body.data;
  }

  const FINISHED = new Set(["SUCCESS", "FAILURE", "CANCELED"]);
  const TERMINABLE = new Set(["NOT_STARTED", "QUEUED", "STARTING", "STARTED"]);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return node;
  }

  const when = ts => ts == null ? "" : new Date(ts * 1000).toLocaleString("sv-SE").replace("T", " ");
  const clock = ts => {
    const d = new Date(ts * 1000);
    return d.toLocaleTimeString("en-GB", {hour12: false}) + "." + String(d.getMilliseconds()).padStart(3, "0");
  };
  const seconds = s => s == null ? "" : s < 1 ? `${Math.round(s * 1000)} ms` : s < 120 ? `${s.toFixed(2)} s` : `${(s / 60).toFixed(1)} min`;
  const statusBadge = s => el("span", {"class": `status status-${(s || "").toLowerCase()}`, "data-status": ""}, s || "");

  function setStatus(container, status) {
    const badge = container.querySelector("[data-status]");
    badge.textContent = status;
    badge.className = `status status-${status.toLowerCase()}`;
  }

  const errorText = data => (data && data.traceback ? "\n" + data.traceback : "");

  // ---- run page: events by long poll, steps refreshed on step events ----------------------------
  async function followRun(root) {
    const runId = root.dataset.runId;
    let cursor = root.dataset.cursor === "" ? null : Number(root.dataset.cursor);
    const tbody = root.querySelector("#events tbody");
    const message = root.querySelector("#run-message");
    const terminate = root.querySelector("#terminate");
    if (terminate) terminate.addEventListener("click", async () => {
      terminate.disabled = true;
      try {
        const data = await gql(`mutation($id: ID!) { terminateRun(runId: $id) { ok message run { status } } }`, {id: runId});
        const p = data.terminateRun;
        if (p.run) setStatus(root, p.run.status);
        if (!p.ok) { message.textContent = p.message; message.hidden = false; }
      } catch (e) { message.textContent = e.message; message.hidden = false; }
    });
    root.querySelectorAll("[data-reexecute]").forEach(button => button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const data = await gql(`mutation($id: ID!, $mode: String) {
          reexecuteRun(runId: $id, mode: $mode) { ok message run { runId } errors { message } } }`,
          {id: runId, mode: button.dataset.reexecute});
        const p = data.reexecuteRun;
        if (p.run) { window.location.href = `/runs/${p.run.runId}`; return; }
        message.textContent = p.errors.length ? p.errors.map(e => e.message).join("; ") : p.message;
        message.hidden = false;
      } catch (e) { message.textContent = e.message; message.hidden = false; }
      button.disabled = false;
    }));
    const reexecute = root.querySelector("#reexecute");
    const query = `query($id: ID!, $after: Int) {
      runEvents(runId: $id, afterId: $after, waitSeconds: 15) {
        cursor runStatus finished events { id eventType timestamp stepKey level message data } }
      run(runId: $id) { startTime endTime failure { reason message } steps { stepKey status attempts startTime endTime error } } }`;
    for (;;) {
      let data;
      const asked = Date.now();
      try { data = await gql(query, {id: runId, after: cursor}); }
      catch (e) { message.textContent = `live updates stopped: ${e.message}`; message.hidden = false; return; }
      const page = data.runEvents;
      for (const e of page.events) {
        tbody.append(el("tr", {"class": `level-${e.level.toLowerCase()}`, "data-event-id": e.id},
          el("td", {"class": "clock", title: when(e.timestamp)}, clock(e.timestamp)), el("td", {}, e.eventType), el("td", {}, e.stepKey || ""),
          el("td", {}, el("pre", {}, e.message + errorText(e.data)))));
      }
      cursor = page.cursor;
      setStatus(root, page.runStatus);
      if (terminate) terminate.hidden = !TERMINABLE.has(page.runStatus);
      if (reexecute) {
        reexecute.hidden = !FINISHED.has(page.runStatus);
        reexecute.querySelector("[data-reexecute='from_failure']").hidden = page.runStatus === "SUCCESS";
      }
      if (data.run) renderSteps(root, data.run);
      if (page.finished && page.events.length === 0) return;
      // an empty page at once: the server had no long-poll slot free (webui.max_long_polls), so wait a little
      if (page.events.length === 0 && Date.now() - asked < 1000) await new Promise(r => setTimeout(r, 1000));
    }
  }

  function renderSteps(root, run) {
    root.querySelector("[data-start]").textContent = when(run.startTime);
    root.querySelector("[data-end]").textContent = when(run.endTime);
    const failure = root.querySelector("#run-failure");
    failure.hidden = !run.failure;
    if (run.failure) {
      failure.querySelector("[data-failure-reason]").textContent = run.failure.reason;
      failure.querySelector("[data-failure-message]").textContent = run.failure.message;
    }
    const tbody = root.querySelector("#steps tbody");
    const logs = (step, stream) => el("a", {href: `/runs/${root.dataset.runId}/steps/${encodeURIComponent(step)}/logs?stream=${stream}`}, stream);
    tbody.replaceChildren(...run.steps.map(s => el("tr", {"data-step": s.stepKey},
      el("td", {}, s.stepKey), el("td", {}, statusBadge(s.status)), el("td", {}, String(s.attempts)),
      el("td", {}, s.endTime && s.startTime ? seconds(s.endTime - s.startTime) : ""),
      el("td", {}, logs(s.stepKey, "stdout"), " · ", logs(s.stepKey, "stderr")),
      el("td", {"class": "error"}, s.error || ""))));
  }

  // ---- launchpad --------------------------------------------------------------------------------
  function launchpad(form) {
    if (!form) return;
    const errors = form.querySelector("#launch-errors");
    form.addEventListener("submit", async ev => {
      ev.preventDefault();
      errors.hidden = true;
      errors.replaceChildren();
      const tags = form.tags.value.split("\n").map(l => l.trim()).filter(Boolean).map(l => {
        const i = l.indexOf("=");
        return i > 0 ? {key: l.slice(0, i).trim(), value: l.slice(i + 1).trim()} : {key: l, value: ""};
      });
      const button = form.querySelector("#launch");
      button.disabled = true;
      try {
        const data = await gql(`mutation($loc: String!, $job: String!, $cfg: String, $tags: [TagInput!], $ops: String) {
          launchRun(location: $loc, jobName: $job, runConfigYaml: $cfg, tags: $tags, ops: $ops) {
            ok message code run { runId } errors { message path } } }`,
          {loc: form.dataset.location, job: form.dataset.job, cfg: form.run_config.value, tags,
           ops: form.ops.value.trim() || null});
        const p = data.launchRun;
        if (p.run) { window.location.href = `/runs/${p.run.runId}`; return; }
        const items = p.errors.length ? p.errors.map(e => e.message) : [p.message];
        errors.replaceChildren(...items.map(m => el("li", {}, m)));
        errors.hidden = false;
      } catch (e) {
        errors.replaceChildren(el("li", {}, e.message));
        errors.hidden = false;
      } finally { button.disabled = false; }
    });
  }

  // ---- schedules and sensors, code location reload ----------------------------------------------
  function toggles(doc) {
    doc.querySelectorAll("[data-toggle]").forEach(button => button.addEventListener("click", async () => {
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
        setStatus(row, p.instigator.status);
        button.textContent = p.instigator.status === "RUNNING" ? "Turn off" : "Turn on";
      } catch (e) { alert(e.message); } finally { button.disabled = false; }
    }));
  }

  function reloads(doc) {
    doc.querySelectorAll("[data-reload]").forEach(button => button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const data = await gql(`mutation($n: String!) { reloadLocation(name: $n) { ok message } }`, {n: button.dataset.reload});
        if (!data.reloadLocation.ok) alert(data.reloadLocation.message);
        window.location.reload();
      } catch (e) { alert(e.message); button.disabled = false; }
    }));
  }

  // ---- run list: refreshed every few seconds ----------------------------------------------------
  function liveRuns(table) {
    if (!table) return;
    const status = table.dataset.statusFilter;
    const job = table.dataset.jobFilter || null;
    const query = `query($s: [String!], $job: String) { runs(statuses: $s, jobName: $job, limit: 50) {
      count runs { runId jobName status createdAt duration tags { key value } } } }`;
    const tick = async () => {
      try {
        const data = await gql(query, {s: status ? [status] : null, job});
        document.getElementById("run-count").textContent = data.runs.count;
        if (!data.runs.runs.length) return;
        table.querySelector("tbody").replaceChildren(...data.runs.runs.map(r => el("tr", {"data-run-id": r.runId},
          el("td", {}, el("a", {href: `/runs/${r.runId}`}, el("code", {}, r.runId.slice(0, 8)))),
          el("td", {}, el("a", {href: `/runs?job=${encodeURIComponent(r.jobName)}`}, r.jobName)),
          el("td", {}, statusBadge(r.status)), el("td", {}, when(r.createdAt)),
          el("td", {}, seconds(r.duration)),
          el("td", {}, ...r.tags.filter(t => !t.key.startsWith("runyard/")).map(t => el("span", {"class": "tag"}, `${t.key}=${t.value}`))))));
      } catch (e) { /* keep the last rendering; retry on the next tick */ }
    };
    setInterval(tick, 3000);
  }

  // Every page starts its own part here: the pages carry no inline script, so the Content-Security-Policy
  // can forbid inline scripts altogether (docs/webui.md, "Security defaults").
  document.addEventListener("DOMContentLoaded", () => {
    liveRuns(document.querySelector("[data-live-runs]"));
    reloads(document);
    toggles(document);
    launchpad(document.getElementById("launchpad"));
    const run = document.getElementById("run");
    if (run && run.dataset.runId) followRun(run);
    followLogs(document.getElementById("log"));
    document.querySelectorAll("select[data-submit-on-change]").forEach(select =>
      select.addEventListener("change", () => select.form.submit()));
  });
  // ---- a step's captured output, followed while the step runs ----------------------------------
  async function followLogs(pre) {
    if (!pre) return;
    let offset = Number(pre.dataset.offset);
    if (pre.dataset.finished === "true") return;
    const query = `query($id: ID!, $step: String!, $stream: String, $offset: Int) {
      stepLogs(runId: $id, stepKey: $step, stream: $stream, offset: $offset) { available data nextOffset finished message } }`;
    for (;;) {
      await new Promise(resolve => setTimeout(resolve, 1000));
      let chunk;
      try {
        chunk = (await gql(query, {id: pre.dataset.runId, step: pre.dataset.step, stream: pre.dataset.stream, offset}))
          .stepLogs;
      } catch (e) { continue; }
      if (chunk.data) pre.append(chunk.data);
      offset = chunk.nextOffset;
      if (chunk.finished) { document.getElementById("log-state").textContent = "finished"; return; }
    }
  }

  return {gql, followRun, launchpad, toggles, followLogs};
})();
