// Backfills (docs/backfills.md): the /backfills list (launch form, progress bars kept fresh), one
// backfill's page (progress, its partitions' runs, cancel, retry failed partitions), and the
// "Launch backfill" control of a partitioned job's page. Everything goes through GraphQL.
"use strict";
(() => {
  const {gql, el, setStatus} = runyard;
  const REFRESH_MS = 1500;
  const PROGRESS = "progress { total submitted finished statusCounts { status count } }";

  const sizeBars = (root = document) => root.querySelectorAll("[data-bar] [data-pct]").forEach(span => {
    span.style.width = `${span.dataset.pct}%`;  // CSSOM: allowed where inline style attributes are not
  });

  function drawProgress(container, progress) {
    const bar = container.querySelector("[data-bar]");
    const counts = container.querySelector("[data-counts]");
    bar.replaceChildren(...progress.statusCounts.map(({status, count}) => {
      const span = el("span", {class: `status-${status.toLowerCase()}`, title: `${count} ${status}`});
      span.style.width = `${(100 * count / (progress.total || 1)).toFixed(2)}%`;
      return span;
    }));
    bar.title = `${progress.submitted} of ${progress.total} partitions submitted`;
    counts.textContent = `${progress.submitted}/${progress.total} submitted` +
      progress.statusCounts.map(({status, count}) => ` · ${count} ${status}`).join("");
  }

  function showErrors(list, messages) {
    list.replaceChildren(...messages.map(m => el("li", {}, m)));
    list.hidden = messages.length === 0;
  }

  async function launch(location, jobName, selection, errors) {
    const q = `mutation($location: String!, $job: String!, $keys: [String!], $from: String, $to: String, $all: Boolean) {
      launchBackfill(location: $location, jobName: $job, partitionKeys: $keys, fromKey: $from, toKey: $to,
                     allPartitions: $all) { ok code message backfill { backfillId } } }`;
    try {
      const answer = (await gql(q, {location, job: jobName, ...selection})).launchBackfill;
      if (!answer.ok) { showErrors(errors, [answer.message]); return; }
      window.location.href = `/backfills/${encodeURIComponent(answer.backfill.backfillId)}`;
    } catch (err) {
      showErrors(errors, [String(err.message || err)]);
    }
  }

  // ---- the list -----------------------------------------------------------------------------------
  function listPage(section) {
    const form = section.querySelector("[data-backfill-launch]");
    if (form) {
      form.addEventListener("submit", e => {
        e.preventDefault();
        const data = new FormData(form);
        const [location, ...rest] = String(data.get("job")).split("/");
        const mode = data.get("mode");
        const split = s => String(s || "").split(",").map(k => k.trim()).filter(Boolean);
        const selection = mode === "all" ? {all: true}
          : mode === "range" ? {from: data.get("from") || null, to: data.get("to") || null}
          : {keys: split(data.get("keys"))};
        launch(location, rest.join("/"), selection, form.querySelector("#backfill-errors"));
      });
    }
    const rows = () => [...section.querySelectorAll("tr[data-backfill-id]")];
    const refresh = async () => {
      const live = rows().filter(r => ["REQUESTED", "CANCELING", "COMPLETED"].includes(
        r.querySelector("[data-status]").textContent.trim()));
      if (!live.length || document.hidden) return;
      try {
        const answers = await Promise.all(live.map(r => gql(
          `query($id: ID!) { backfill(backfillId: $id) { status ${PROGRESS} } }`, {id: r.dataset.backfillId})));
        answers.forEach(({backfill}, i) => {
          if (!backfill) return;
          setStatus(live[i], backfill.status);
          drawProgress(live[i].querySelector("[data-backfill-progress]"), backfill.progress);
        });
      } catch (err) { /* the next refresh tries again */ }
    };
    setInterval(refresh, REFRESH_MS);
  }

  // ---- one backfill -------------------------------------------------------------------------------
  function backfillPage(section) {
    const id = section.dataset.backfillId;
    const errors = section.querySelector("#backfill-errors");
    const cancel = section.querySelector("#cancel-backfill");
    const retry = section.querySelector("#retry-backfill");
    const rowsByKey = new Map([...section.querySelectorAll("tr[data-partition-key]")].map(r => [r.dataset.partitionKey, r]));
    let settled = false;

    const draw = backfill => {
      setStatus(section.querySelector("#backfill-status"), backfill.status);
      section.dataset.status = backfill.status;
      drawProgress(section.querySelector("[data-backfill-progress]"), backfill.progress);
      section.querySelector("#backfill-error").textContent = backfill.error || "";
      section.querySelectorAll("[data-problem]").forEach(n => { n.hidden = !backfill.error; });
      if (cancel) cancel.hidden = !["REQUESTED", "COMPLETED"].includes(backfill.status);
      if (retry) retry.hidden = backfill.status === "REQUESTED";
      for (const p of backfill.partitions) {
        const row = rowsByKey.get(p.key);
        if (!row) continue;
        const runCell = row.querySelector("[data-run]");
        if (p.runId && !runCell.querySelector("a")) {
          runCell.replaceChildren(el("a", {href: `/runs/${encodeURIComponent(p.runId)}`}, el("code", {}, p.runId.slice(0, 8))));
        }
        setStatus(row.querySelector("[data-run-status]"), p.status);
      }
      const p = backfill.progress;
      settled = ["CANCELED", "FAILED"].includes(backfill.status)
        || (backfill.status === "COMPLETED" && p.finished >= p.total);
    };
    const refresh = async () => {
      if (settled || document.hidden) return;
      try {
        const {backfill} = await gql(`query($id: ID!, $n: Int) { backfill(backfillId: $id) { status error ${PROGRESS}
          partitions(limit: $n) { key status runId } } }`, {id, n: rowsByKey.size});
        if (backfill) draw(backfill);
      } catch (err) { /* the next refresh tries again */ }
    };
    const act = async (mutation, onOk) => {
      showErrors(errors, []);
      try {
        const answer = Object.values(await gql(`mutation($id: ID!) { ${mutation}(backfillId: $id) {
          ok code message backfill { backfillId } } }`, {id}))[0];
        if (!answer.ok) { showErrors(errors, [answer.message]); return; }
        onOk(answer.backfill);
      } catch (err) {
        showErrors(errors, [String(err.message || err)]);
      }
    };
    if (cancel) cancel.addEventListener("click", () => act("cancelBackfill", () => { settled = false; refresh(); }));
    if (retry) retry.addEventListener("click", () => act("retryBackfill", bf => {
      window.location.href = `/backfills/${encodeURIComponent(bf.backfillId)}`;
    }));
    setInterval(refresh, REFRESH_MS);
    refresh();
  }

  // ---- a partitioned job's page: launch a backfill of a range or of the selected partitions -------
  function jobControl(section) {
    const form = section.querySelector("[data-backfill-launch]");
    if (!form) return;
    const errors = form.querySelector("#backfill-errors");
    form.addEventListener("submit", e => {
      e.preventDefault();
      const data = new FormData(form);
      const mode = data.get("mode");
      let selection;
      if (mode === "selected") {
        const keys = (section.dataset.selectedKeys || "").split(",").filter(Boolean);  // static/partitions.js
        if (!keys.length) { showErrors(errors, ["Select partitions in the grid first (Ctrl/Shift-click)."]); return; }
        selection = {keys};
      } else if (mode === "range") {
        selection = {from: data.get("from") || null, to: data.get("to") || null};
      } else {
        selection = {all: true};
      }
      launch(section.dataset.location, section.dataset.job, selection, errors);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    sizeBars();
    const list = document.getElementById("backfills");
    if (list) listPage(list);
    const one = document.getElementById("backfill");
    if (one) backfillPage(one);
    const partitions = document.getElementById("partitions");
    if (partitions) jobControl(partitions);
  });
})();
