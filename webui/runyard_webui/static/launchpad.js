// runyard web UI: launchpad. Uses the helpers of app.js (loaded first, as `runyard`).
"use strict";
(() => {
  const {gql, el, when, clock, seconds, statusBadge, setStatus, errorText, FINISHED, TERMINABLE} = runyard;

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

  document.addEventListener("DOMContentLoaded", () => launchpad(document.getElementById("launchpad")));
})();
