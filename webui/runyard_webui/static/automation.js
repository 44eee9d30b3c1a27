// runyard web UI: automation (schedules, sensors) and code location reloads. Uses the helpers of app.js (loaded first, as `runyard`).
"use strict";
(() => {
  const {gql, el, when, clock, seconds, statusBadge, setStatus, errorText, FINISHED, TERMINABLE} = runyard;

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

  document.addEventListener("DOMContentLoaded", () => { reloads(document); toggles(document); });
})();
