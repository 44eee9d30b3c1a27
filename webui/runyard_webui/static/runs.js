// runyard web UI: runs list. Uses the helpers of app.js (loaded first, as `runyard`).
"use strict";
(() => {
  const {gql, el, when, clock, seconds, statusBadge, setStatus, errorText, FINISHED, TERMINABLE} = runyard;

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

  document.addEventListener("DOMContentLoaded", () => liveRuns(document.querySelector("[data-live-runs]")));
})();
