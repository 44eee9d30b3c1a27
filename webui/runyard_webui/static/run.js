// runyard web UI: the run page. Uses the helpers of app.js (loaded first, as `runyard`).
//
// The server renders the run, every step of its plan (with each attempt as JSON in data-attempts)
// and the newest events; this module draws the timeline from the step rows, filters the event log in
// the browser (the filters live in the URL hash), loads older events on demand, follows new events
// (server-sent events through runyard.subscribe, or the GraphQL long poll where that is missing) and
// re-reads the steps through GraphQL when a step or the run changes.
"use strict";
(() => {
  const {gql, el, when, clock, seconds, statusBadge, setStatus, errorText, FINISHED, TERMINABLE} = runyard;
  // a <time> the zone selector redraws (app.js), else plain text
  const timeNode = (ts, format) => (runyard.timeEl ? runyard.timeEl(ts, format) : document.createTextNode(format === "clock" ? clock(ts) : when(ts)));
  const SVG = "http://www.w3.org/2000/svg";
  const LEVELS = {DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50};
  const FILTERS = ["level", "step", "type", "q"];
  // re-read the steps at most this often while events stream in
  const REFRESH_MS = 300;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return node;
  }

  const now = () => Date.now() / 1000;
  const num = v => (v === "" || v == null ? null : Number(v));

  class RunPage {
    constructor(root) {
      this.root = root;
      this.runId = root.dataset.runId;
      this.status = root.dataset.status;
      this.startTime = num(root.dataset.startTime);
      this.endTime = num(root.dataset.endTime);
      this.cursor = num(root.dataset.cursor);
      this.firstId = num(root.dataset.firstId);
      this.pageSize = Number(root.dataset.pageEvents) || 500;
      this.events = root.querySelector("#events tbody");
      this.message = root.querySelector("#run-message");
      this.form = root.querySelector("#event-filters");
      this.selected = new Set();
      // no step selection for whoever may not re-execute (a read-only web UI, a viewer): a click focuses
      this.readOnly = document.body.dataset.readOnly === "true" || !runyard.can("reexecute_run");
      this.steps = [...root.querySelectorAll("#steps tbody tr")].map(tr => ({
        stepKey: tr.dataset.step, status: tr.dataset.stepStatus,
        attempts: JSON.parse(tr.dataset.attempts || "[]").map(([startTime, endTime, outcome]) => ({startTime, endTime, outcome})),
      }));
      this.types = new Set();
      this.events.querySelectorAll("tr").forEach(tr => this.types.add(tr.dataset.type));
      this.refreshTimer = null;
      this.output = null;
    }

    start() {
      this.fillTypes();
      this.readHash();
      this.bindFilters();
      this.bindSteps();
      this.bindActions();
      this.drawTimeline();
      this.tick();
      window.addEventListener("resize", () => this.drawTimeline());
      if (!FINISHED.has(this.status)) this.follow();
    }

    showMessage(text) { this.message.textContent = text; this.message.hidden = !text; }

    // ---- the event log: rows, older pages, filters ---------------------------------------------
    eventRow(e) {
      return el("tr", {"class": `level-${e.level.toLowerCase()}`, "data-event-id": e.id, "data-level": e.level,
                       "data-type": e.eventType, "data-step": e.stepKey || ""},
        el("td", {"class": "clock"}, timeNode(e.timestamp, "clock")), el("td", {}, e.level),
        el("td", {}, e.eventType), el("td", {}, e.stepKey || ""), el("td", {}, el("pre", {}, e.message + errorText(e.data))));
    }

    addEvents(events, older) {
      const rows = events.map(e => this.eventRow(e));
      if (older) this.events.prepend(...rows); else this.events.append(...rows);
      let stepsChanged = false;
      for (const e of events) {
        if (!this.types.has(e.eventType)) { this.types.add(e.eventType); this.fillTypes(); }
        if (e.stepKey && !this.steps.some(s => s.stepKey === e.stepKey)) this.addStepOption(e.stepKey);
        if (!older && (e.stepKey || e.eventType.startsWith("RUN_"))) stepsChanged = true;
      }
      rows.forEach(tr => { tr.hidden = !this.matches(tr); });
      this.countMatches();
      return stepsChanged;
    }

    async loadOlder(button) {
      button.disabled = true;
      try {
        const data = await gql(`query($id: ID!, $before: Int, $limit: Int) {
          runEvents(runId: $id, beforeId: $before, limit: $limit) { hasOlder events { id eventType timestamp stepKey level message data } } }`,
          {id: this.runId, before: this.firstId, limit: this.pageSize});
        const page = data.runEvents;
        if (page.events.length) this.firstId = page.events[0].id;
        this.addEvents(page.events, true);
        this.root.querySelector("#older").hidden = !page.hasOlder;
      } catch (e) { this.showMessage(`could not load older events: ${e.message}`); }
      button.disabled = false;
    }

    fillTypes() {
      const select = this.form.elements.type;
      const current = select.value || this.pendingType || "";
      select.replaceChildren(el("option", {value: ""}, "any"),
        ...[...this.types].sort().map(t => el("option", {value: t}, t)));
      select.value = [...this.types].includes(current) ? current : "";
      if (current && select.value !== current) this.pendingType = current; // not seen yet: kept for later
    }

    addStepOption(step) {
      const select = this.form.elements.step;
      if (![...select.options].some(o => o.value === step)) select.append(el("option", {value: step}, step));
    }

    filters() {
      const f = {};
      for (const name of FILTERS) f[name] = (this.form.elements[name].value || "").trim();
      if (!f.type && this.pendingType) f.type = this.pendingType;
      return f;
    }

    matches(tr) {
      const f = this.current || this.filters();
      if (f.level && (LEVELS[tr.dataset.level] ?? 0) < LEVELS[f.level]) return false;
      if (f.step && tr.dataset.step !== f.step) return false;
      if (f.type && tr.dataset.type !== f.type) return false;
      return !f.q || tr.textContent.toLowerCase().includes(f.q.toLowerCase());
    }

    applyFilters() {
      this.current = this.filters();
      for (const tr of this.events.rows) tr.hidden = !this.matches(tr);
      this.countMatches();
      const params = new URLSearchParams();
      for (const name of FILTERS) if (this.current[name]) params.set(name, this.current[name]);
      const hash = params.toString();
      if (hash !== window.location.hash.slice(1)) history.replaceState(null, "", hash ? `#${hash}` : window.location.pathname + window.location.search);
      this.focusStep(this.current.step || null);
    }

    countMatches() {
      const rows = this.events.rows;
      const shown = [...rows].filter(tr => !tr.hidden).length;
      const filtered = FILTERS.some(name => (this.current || {})[name]);
      this.form.querySelector("[data-filter-count]").textContent = filtered ? `${shown} of ${rows.length} loaded events` : "";
      this.root.querySelector("#no-events-match").hidden = !(filtered && shown === 0 && rows.length > 0);
    }

    readHash() {
      const params = new URLSearchParams(window.location.hash.slice(1));
      for (const name of FILTERS) {
        const value = params.get(name) || "";
        if (name === "step" && value) this.addStepOption(value);
        if (name === "type") { this.pendingType = value || null; this.fillTypes(); continue; }
        this.form.elements[name].value = value;
      }
      this.applyFilters();
    }

    bindFilters() {
      this.form.addEventListener("submit", ev => ev.preventDefault());
      this.form.addEventListener("change", ev => {
        if (ev.target.name === "type") this.pendingType = ev.target.value || null;
        this.applyFilters();
      });
      this.form.elements.q.addEventListener("input", () => this.applyFilters());
      this.root.querySelector("#clear-filters").addEventListener("click", () => this.setFilters({}));
      window.addEventListener("hashchange", () => this.readHash());
      const older = this.root.querySelector("#load-older");
      older.addEventListener("click", () => this.loadOlder(older));
    }

    setFilters(values) {
      this.pendingType = values.type || null;
      for (const name of FILTERS) this.form.elements[name].value = values[name] || "";
      this.applyFilters();
    }

    // ---- steps: the table, selection for re-execution, focus (= the log filtered to one step) ----
    bindSteps() {
      const table = this.root.querySelector("#steps");
      table.addEventListener("change", ev => {
        const key = ev.target.dataset.selectStep;
        if (key == null) return;
        if (ev.target.checked) this.selected.add(key); else this.selected.delete(key);
        this.selectionChanged();
      });
      table.addEventListener("click", ev => {
        const button = ev.target.closest("[data-focus-step]");
        if (button) this.toggleFocus(button.dataset.focusStep);
      });
      const panel = this.root.querySelector("#step-output");
      panel.querySelectorAll("[data-stream]").forEach(tab => tab.addEventListener("click", () => {
        if (this.output) this.openOutput(this.output.step, tab.dataset.stream);
      }));
    }

    toggleFocus(step) {
      const current = this.filters();
      this.setFilters({...current, step: current.step === step ? "" : step});
    }

    toggleSelected(step) {
      if (this.selected.has(step)) this.selected.delete(step); else this.selected.add(step);
      this.selectionChanged();
    }

    selectionChanged() {
      for (const box of this.root.querySelectorAll("[data-select-step]")) box.checked = this.selected.has(box.dataset.selectStep);
      const button = this.root.querySelector("[data-reexecute='selected']");
      if (button) {
        button.disabled = this.selected.size === 0 || runyard.forbidden(button);
        button.querySelector("[data-selected-count]").textContent = String(this.selected.size);
      }
      this.drawTimeline();
    }

    focusStep(step) {
      if (this.focused === step) return;
      this.focused = step;
      for (const tr of this.root.querySelectorAll("#steps tbody tr")) tr.classList.toggle("focused", tr.dataset.step === step);
      this.drawTimeline();
      if (step) this.openOutput(step, this.output && this.output.step === step ? this.output.stream : "stdout");
      else this.closeOutput();
    }

    renderSteps(run) {
      this.steps = run.planSteps.map(s => ({stepKey: s.stepKey, status: s.status, error: s.error, duration: s.duration,
        upstream: s.upstream || [],
        attempts: s.attempts.map(a => ({startTime: a.startTime, endTime: a.endTime, outcome: a.outcome}))}));
      const logs = (step, stream) => el("a", {href: `/runs/${this.runId}/steps/${encodeURIComponent(step)}/logs?stream=${stream}`}, stream);
      const tbody = this.root.querySelector("#steps tbody");
      tbody.replaceChildren(...this.steps.map(s => {
        const box = this.readOnly ? "" : el("input", {type: "checkbox", "data-select-step": s.stepKey, "aria-label": `select ${s.stepKey}`});
        if (box) box.checked = this.selected.has(s.stepKey);
        const row = {"data-step": s.stepKey, "data-step-status": s.status, "class": s.stepKey === this.focused ? "focused" : ""};
        if (s.upstream.length) row["data-upstream"] = s.upstream.join(" ");  // from the plan stored with the run
        return el("tr", row,
          el("td", {}, box), el("td", {}, el("button", {type: "button", "class": "link", "data-focus-step": s.stepKey}, s.stepKey)),
          el("td", {}, statusBadge(s.status)), el("td", {}, String(s.attempts.length)),
          el("td", {"data-step-duration": ""}, seconds(s.duration)),
          el("td", {}, logs(s.stepKey, "stdout"), " · ", logs(s.stepKey, "stderr")),
          el("td", {"class": "error"}, s.error || ""));
      }));
      this.root.querySelector("[data-step-count]").textContent = String(this.steps.length);
      this.steps.forEach(s => this.addStepOption(s.stepKey));
      this.drawTimeline();
    }

    // ---- the timeline: one row per step, a bar per attempt --------------------------------------
    drawTimeline() {
      const box = this.root.querySelector("#timeline");
      const tried = this.steps.filter(s => s.attempts.length);
      if (!tried.length) {
        box.replaceChildren(el("p", {"class": "muted", "data-timeline-empty": ""}, "No step has started yet."));
        return;
      }
      const running = !FINISHED.has(this.status);
      const starts = tried.map(s => s.attempts[0].startTime);
      const ends = tried.flatMap(s => s.attempts.map(a => a.endTime ?? a.startTime));
      const t0 = Math.min(...starts, this.startTime ?? Infinity);
      // a finished run whose end is not read yet (its status came with the events): up to now
      const t1 = Math.max(running || this.endTime == null ? now() : this.endTime, ...ends, t0 + 0.001);
      const width = Math.max(box.clientWidth || 900, 480);
      const label = 170, pad = 14, rowH = 24, axisH = 26;
      const span = t1 - t0;
      const x = t => label + ((t - t0) / span) * (width - label - pad);
      const height = axisH + this.steps.length * rowH + 4;
      const chart = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "class": "gantt"});
      // the axis: about eight round ticks
      const STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400];
      const every = STEPS.find(s => span / s <= 8) || 86400;
      const axis = svg("g", {"class": "axis"});
      for (let t = 0; t <= span + 1e-9; t += every) {
        const px = x(t0 + t);
        axis.append(svg("line", {x1: px, x2: px, y1: axisH - 6, y2: height, "class": "grid"}),
          svg("text", {x: px, y: axisH - 10, "text-anchor": "middle"}, seconds(t) || "0"));
      }
      chart.append(axis);
      this.steps.forEach((s, i) => {
        const y = axisH + i * rowH;
        const classes = ["row", this.selected.has(s.stepKey) ? "selected" : "", s.stepKey === this.focused ? "focused" : ""];
        const row = svg("g", {"class": classes.join(" ").trim(), "data-step": s.stepKey, tabindex: "0", role: "button",
                               "aria-label": `${s.stepKey}: ${s.status}`});
        row.append(svg("rect", {x: 0, y, width, height: rowH, "class": "hit"}),
          svg("text", {x: 6, y: y + rowH / 2 + 4, "class": "label"}, (this.selected.has(s.stepKey) ? "☑ " : "") + s.stepKey));
        s.attempts.forEach((a, n) => {
          const end = a.endTime ?? (running ? now() : t1);
          const bar = svg("rect", {x: x(a.startTime), y: y + 5, width: Math.max(2, x(end) - x(a.startTime)), height: rowH - 10,
                                    rx: 2, "class": `bar outcome-${a.outcome.toLowerCase()}`, "data-attempt": n + 1});
          bar.append(svg("title", {}, `${s.stepKey} attempt ${n + 1}: ${a.outcome.toLowerCase()}, ${seconds(end - a.startTime)}`));
          row.append(bar);
        });
        if (!s.attempts.length) row.append(svg("text", {x: label + 4, y: y + rowH / 2 + 4, "class": "pending"}, s.status.toLowerCase()));
        row.addEventListener("click", ev => (ev.shiftKey && !this.readOnly ? this.toggleSelected(s.stepKey) : this.toggleFocus(s.stepKey)));
        row.addEventListener("keydown", ev => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); this.toggleFocus(s.stepKey); } });
        chart.append(row);
      });
      box.replaceChildren(chart, el("p", {"class": "muted hint"}, this.readOnly ? "Click a step to filter the events to it."
        : "Click a step to filter the events to it, shift-click to select it for re-execution."));
    }

    // a running run: bars and the duration grow every second
    showDuration() {
      const duration = this.root.querySelector("[data-duration]");
      if (this.startTime != null) duration.textContent = seconds((this.endTime ?? now()) - this.startTime);
    }

    tick() {
      this.showDuration();
      if (FINISHED.has(this.status)) return;
      if (this.steps.some(s => s.attempts.some(a => a.endTime == null))) this.drawTimeline();
      setTimeout(() => this.tick(), 1000);
    }

    // ---- a step's captured output, in tabs under the steps --------------------------------------
    async openOutput(step, stream) {
      this.closeOutput();
      const panel = this.root.querySelector("#step-output");
      const pre = panel.querySelector("#step-output-text");
      const state = panel.querySelector("[data-output-state]");
      const token = this.output = {step, stream, closed: false, sub: null};
      panel.hidden = false;
      panel.querySelector("[data-output-step]").textContent = step;
      panel.querySelector("[data-output-page]").href = `/runs/${this.runId}/steps/${encodeURIComponent(step)}/logs?stream=${stream}`;
      panel.querySelectorAll("[data-stream]").forEach(tab => {
        tab.classList.toggle("current", tab.dataset.stream === stream);
        tab.setAttribute("aria-selected", String(tab.dataset.stream === stream));
      });
      pre.textContent = "";
      state.textContent = "loading…";
      const query = `query($id: ID!, $step: String!, $stream: String, $offset: Int) {
        stepLogs(runId: $id, stepKey: $step, stream: $stream, offset: $offset, maxBytes: 1048576) { available data nextOffset finished message } }`;
      let offset = 0;
      const show = chunk => {
        if (token.closed) return true;
        if (chunk.data) pre.append(chunk.data);
        if (chunk.nextOffset != null) offset = chunk.nextOffset;
        state.textContent = chunk.finished ? "finished" : chunk.available ? "following…" : (chunk.message || "waiting for the step…");
        return chunk.finished;
      };
      let chunk;
      try { chunk = (await gql(query, {id: this.runId, step, stream, offset})).stepLogs; }
      catch (e) { state.textContent = e.message; return; }
      if (show(chunk)) return;
      if (typeof runyard.subscribe === "function") {
        token.sub = runyard.subscribe(`/live/runs/${encodeURIComponent(this.runId)}/steps/${encodeURIComponent(step)}/logs?stream=${stream}&offset=${offset}`,
          msg => { if (show(msg) && token.sub) token.sub.close(); },
          {onEnd: () => { if (!token.closed) state.textContent = "finished"; }});
        return;
      }
      while (!token.closed) { // no live endpoint in this build: ask again every second
        await new Promise(r => setTimeout(r, 1000));
        try { chunk = (await gql(query, {id: this.runId, step, stream, offset})).stepLogs; } catch (e) { continue; }
        if (show(chunk)) return;
      }
    }

    closeOutput() {
      if (this.output) {
        this.output.closed = true;
        if (this.output.sub) this.output.sub.close();
      }
      this.output = null;
      const panel = this.root.querySelector("#step-output");
      panel.hidden = !this.focused;
    }

    // ---- actions ---------------------------------------------------------------------------------
    bindActions() {
      const terminate = this.root.querySelector("#terminate");
      const dialog = this.root.querySelector("#terminate-dialog");
      if (terminate && dialog) {
        terminate.addEventListener("click", () => dialog.showModal());
        dialog.addEventListener("close", async () => {
          if (dialog.returnValue !== "confirm") return;
          dialog.returnValue = "";
          terminate.disabled = true;
          try {
            const data = await gql(`mutation($id: ID!) { terminateRun(runId: $id) { ok message run { status } } }`, {id: this.runId});
            const p = data.terminateRun;
            if (p.run) this.setRunStatus(p.run.status);
            if (!p.ok) this.showMessage(p.message);
          } catch (e) { this.showMessage(e.message); }
          terminate.disabled = false;
        });
      }
      this.root.querySelectorAll("[data-reexecute]").forEach(button => button.addEventListener("click", async () => {
        const selected = button.dataset.reexecute === "selected";
        button.disabled = true;
        try {
          const data = await gql(`mutation($id: ID!, $mode: String, $ops: String) {
            reexecuteRun(runId: $id, mode: $mode, ops: $ops) { ok message run { runId } errors { message } } }`,
            {id: this.runId, mode: selected ? "all" : button.dataset.reexecute, ops: selected ? [...this.selected].join(",") : null});
          const p = data.reexecuteRun;
          if (p.run) { window.location.href = `/runs/${p.run.runId}`; return; }
          this.showMessage(p.errors.length ? p.errors.map(e => e.message).join("; ") : p.message);
        } catch (e) { this.showMessage(e.message); }
        button.disabled = selected && this.selected.size === 0;
      }));
    }

    setRunStatus(status) {
      this.status = status;
      this.root.dataset.status = status;
      setStatus(this.root.querySelector("h1"), status);
      const terminate = this.root.querySelector("#terminate");
      if (terminate) terminate.hidden = !TERMINABLE.has(status);
      const reexecute = this.root.querySelector("#reexecute");
      if (reexecute) {
        reexecute.hidden = !FINISHED.has(status);
        reexecute.querySelector("[data-reexecute='from_failure']").hidden = status === "SUCCESS";
      }
    }

    // ---- live: new events, then the steps and the run re-read -----------------------------------
    follow() {
      if (typeof runyard.subscribe === "function") {
        const after = this.cursor == null ? "" : `?after=${this.cursor}`;
        this.sub = runyard.subscribe(`/live/runs/${encodeURIComponent(this.runId)}/events${after}`,
          msg => this.onPage(msg), {onEnd: () => this.refresh()});
      } else {
        this.longPoll();
      }
    }

    onPage(page) {
      const fresh = (page.events || []).filter(e => this.cursor == null || e.id > this.cursor);
      if (fresh.length) this.cursor = fresh[fresh.length - 1].id;
      if (this.firstId == null && fresh.length) this.firstId = fresh[0].id;
      const changed = this.addEvents(fresh, false);
      if (page.runStatus && page.runStatus !== this.status) this.setRunStatus(page.runStatus);
      if (changed || page.finished) this.scheduleRefresh();
    }

    // Where the server-sent events endpoint is missing: the GraphQL long poll, one request at a time.
    async longPoll() {
      const query = `query($id: ID!, $after: Int) { runEvents(runId: $id, afterId: $after, waitSeconds: 15) {
        cursor runStatus finished events { id eventType timestamp stepKey level message data } } }`;
      for (;;) {
        const asked = Date.now();
        let page;
        try { page = (await gql(query, {id: this.runId, after: this.cursor})).runEvents; }
        catch (e) { this.showMessage(`live updates stopped: ${e.message}`); return; }
        this.onPage(page);
        if (page.finished && page.events.length === 0) { this.refresh(); return; }
        // an empty page at once: no long-poll slot was free (webui.max_long_polls), so wait a little
        if (page.events.length === 0 && Date.now() - asked < 1000) await new Promise(r => setTimeout(r, 1000));
      }
    }

    scheduleRefresh() {
      if (this.refreshTimer) return;
      this.refreshTimer = setTimeout(() => { this.refreshTimer = null; this.refresh(); }, REFRESH_MS);
    }

    async refresh() {
      let run;
      try {
        run = (await gql(`query($id: ID!) { run(runId: $id) { status startTime endTime failure { reason message }
          planSteps { stepKey status duration error upstream attempts { startTime endTime outcome } } children { runId status } } }`,
          {id: this.runId})).run;
      } catch (e) { this.showMessage(`could not refresh the steps: ${e.message}`); return; }
      if (!run) return;
      this.startTime = run.startTime;
      this.endTime = run.endTime;
      this.root.querySelector("[data-start]").replaceChildren(timeNode(run.startTime, "when"));
      this.root.querySelector("[data-end]").replaceChildren(timeNode(run.endTime, "when"));
      const failure = this.root.querySelector("#run-failure");
      failure.hidden = !run.failure;
      if (run.failure) {
        failure.querySelector("[data-failure-reason]").textContent = run.failure.reason;
        failure.querySelector("[data-failure-message]").textContent = run.failure.message;
      }
      this.renderChildren(run.children);
      if (run.status !== this.status) this.setRunStatus(run.status);
      this.renderSteps(run);
      this.showDuration();
    }

    renderChildren(children) {
      const dd = this.root.querySelector("#children");
      dd.replaceChildren(...children.map(c => el("span", {"class": "child", "data-child": c.runId},
        el("a", {href: `/runs/${c.runId}`}, el("code", {}, c.runId.slice(0, 8))), " ", statusBadge(c.status), " ")));
      dd.hidden = children.length === 0;
      this.root.querySelector("[data-children-label]").hidden = children.length === 0;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("run");
    if (root && root.dataset.runId) new RunPage(root).start();
  });
})();
