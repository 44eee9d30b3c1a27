// runyard web UI: logs of a step. Uses the helpers of app.js (loaded first, as `runyard`).
"use strict";
(() => {
  const {subscribe} = runyard;

  // ---- a step's captured output, pushed by the server while the step runs ------------------------
  // The page renders the output so far; /live/runs/<id>/steps/<key>/logs sends the rest as it is written
  // (also when the page was opened before the step started), then `end` once the step is over.
  const STATES = {waiting: "waiting for the step to start…", following: "following…", finished: "finished"};

  function followLogs(pre) {
    if (!pre || pre.dataset.finished === "true") return;
    const state = document.getElementById("log-state");
    const missing = document.getElementById("log-missing");
    const show = name => {
      state.dataset.state = name;
      state.textContent = STATES[name];
    };
    const {runId, step, stream} = pre.dataset;
    const path = `/live/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step)}/logs` +
      `?stream=${encodeURIComponent(stream)}&offset=${encodeURIComponent(pre.dataset.offset)}`;
    subscribe(path, chunk => {
      if (chunk.available) {
        pre.hidden = false;
        missing.hidden = true;
        if (chunk.data) pre.append(chunk.data);
        pre.dataset.offset = String(chunk.nextOffset);
      } else if (chunk.message) {
        missing.textContent = chunk.message;
      }
      if (chunk.finished) {
        pre.dataset.finished = "true";
        show("finished");
      } else {
        show(chunk.available ? "following" : "waiting");
      }
    }, {onEnd: () => show("finished")});
  }

  document.addEventListener("DOMContentLoaded", () => followLogs(document.getElementById("log")));
})();
