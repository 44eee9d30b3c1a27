// runyard web UI: run page. Uses the helpers of app.js (loaded first, as `runyard`).
"use strict";
(() => {
  const {gql, el, when, clock, seconds, statusBadge, setStatus, errorText, FINISHED, TERMINABLE} = runyard;

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

  document.addEventListener("DOMContentLoaded", () => {
    const run = document.getElementById("run");
    if (run && run.dataset.runId) followRun(run);
  });
})();
