// runyard web UI: logs of a step. Uses the helpers of app.js (loaded first, as `runyard`).
"use strict";
(() => {
  const {gql, el, when, clock, seconds, statusBadge, setStatus, errorText, FINISHED, TERMINABLE} = runyard;

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

  document.addEventListener("DOMContentLoaded", () => followLogs(document.getElementById("log")));
})();
