// The job page's partitions (templates/_partitions.html, docs/partitions.md): click a partition to
// select it (Ctrl/Cmd-click adds or removes one, Shift-click a range), see its last run, launch it
// (GraphQL launchRun with partitionKey) or open it in the launchpad. The selection is kept on the
// section as `data-selected-keys` (comma-separated) and announced with a `partitions:selection` event
// (detail: {keys}), so other controls (a backfill of the selected partitions) can act on it.
"use strict";
(() => {
  const {gql, el} = runyard;

  function partitions(root) {
    const cells = [...root.querySelectorAll(".partition-cell")];
    const info = root.querySelector("#partition-selection");
    const launch = root.querySelector("#launch-partition");
    const launchpad = root.querySelector("#partition-launchpad");
    const errors = root.querySelector("#partition-errors");
    const refused = launch && runyard.forbidden(launch) ? launch.title : "";
    let anchor = null, launching = false;

    const selected = () => cells.filter(c => c.classList.contains("selected"));

    function update() {
      const chosen = selected();
      const keys = chosen.map(c => c.dataset.partitionKey);
      root.dataset.selectedKeys = keys.join(",");
      for (const c of cells) c.setAttribute("aria-selected", c.classList.contains("selected") ? "true" : "false");
      if (keys.length === 0) {
        info.replaceChildren("Click a partition to see its last run and launch it (Ctrl/Shift-click selects several).");
      } else if (keys.length === 1) {
        const c = chosen[0];
        const run = c.dataset.runId
          ? el("span", {}, " — last run ", el("a", {href: `/runs/${c.dataset.runId}`, id: "partition-last-run"},
              el("code", {}, c.dataset.runId.slice(0, 8))))
          : " — never run";
        info.replaceChildren(el("strong", {}, keys[0]), " ",
          el("span", {"class": `status status-${c.dataset.status.toLowerCase()}`}, c.dataset.status), run);
      } else {
        info.replaceChildren(`${keys.length} partitions selected`);
      }
      if (launch) {
        launch.disabled = Boolean(refused) || launching || keys.length !== 1;
        launch.title = refused || (keys.length === 1 ? `Launch a run of partition ${keys[0]}` : "Select one partition");
      }
      if (launchpad) {
        const one = keys.length === 1;
        launchpad.setAttribute("aria-disabled", one ? "false" : "true");
        launchpad.href = one ? `${root.dataset.launchpad}?partition=${encodeURIComponent(keys[0])}` : "#";
      }
      root.dispatchEvent(new CustomEvent("partitions:selection", {detail: {keys}, bubbles: true}));
    }

    for (const cell of cells) {
      cell.addEventListener("click", ev => {
        ev.preventDefault();
        if (ev.shiftKey && anchor) {
          const [a, b] = [cells.indexOf(anchor), cells.indexOf(cell)].sort((x, y) => x - y);
          cells.slice(a, b + 1).forEach(c => c.classList.add("selected"));
        } else if (ev.ctrlKey || ev.metaKey) {
          cell.classList.toggle("selected");
          anchor = cell;
        } else {
          const only = cell.classList.contains("selected") && selected().length === 1;
          cells.forEach(c => c.classList.remove("selected"));
          if (!only) cell.classList.add("selected");
          anchor = cell;
        }
        update();
      });
    }
    if (launchpad) launchpad.addEventListener("click", ev => {
      if (launchpad.getAttribute("aria-disabled") === "true") ev.preventDefault();
    });

    if (launch) launch.addEventListener("click", async () => {
      const keys = selected().map(c => c.dataset.partitionKey);
      if (launch.disabled || keys.length !== 1) return;
      launching = true;
      update();
      errors.hidden = true;
      try {
        const result = await gql(`mutation($loc: String!, $job: String!, $key: String!) {
          launchRun(location: $loc, jobName: $job, partitionKey: $key) {
            ok message code run { runId } errors { message path } } }`,
          {loc: root.dataset.location, job: root.dataset.job, key: keys[0]});
        const p = result.launchRun;
        if (p.run && p.ok) { window.location.href = `/runs/${p.run.runId}`; return; }
        const items = p.errors && p.errors.length ? p.errors.map(e => e.message) : [p.message];
        errors.replaceChildren(...items.map(m => el("li", {}, m)));
        errors.hidden = false;
      } catch (e) {
        errors.replaceChildren(el("li", {}, e.message));
        errors.hidden = false;
      } finally {
        launching = false;
        update();
      }
    });
    update();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("partitions");
    if (root) partitions(root);
  });
})();
