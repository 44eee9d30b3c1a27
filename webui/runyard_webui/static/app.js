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

  // Pages start their own part (static/<page>.js) on DOMContentLoaded; they carry no inline script,
  // so the Content-Security-Policy can forbid inline scripts altogether (docs/webui.md, "Security defaults").
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("select[data-submit-on-change]").forEach(select =>
      select.addEventListener("change", () => select.form.submit()));
  });

  return {gql, el, when, clock, seconds, statusBadge, setStatus, errorText, FINISHED, TERMINABLE};
})();
