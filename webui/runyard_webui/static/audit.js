// runyard web UI: the audit log. Uses the helpers of app.js (loaded first, as `runyard`).
// The server renders the newest page for the URL's filters; "Older entries" reads the next page
// through GraphQL (auditLog) and adds it under the rows, drawn as templates/audit.html draws them.
// Without this script the same link opens the older page itself (?before=<id>).
"use strict";
(() => {
  const {gql, el, timeEl} = runyard;

  const QUERY = `query($limit: Int, $beforeId: Int, $actor: String, $action: String, $location: String, $result: String) {
    auditLog(limit: $limit, beforeId: $beforeId, actor: $actor, action: $action, location: $location, result: $result) {
      entries { id timestamp actor via role action target location result code message remoteAddr details }
      hasMore } }`;

  // a link to this page with one more filter, from the oldest entry again
  function filterLink(name, value, ...content) {
    const url = new URL(window.location.href);
    url.searchParams.set(name, value);
    url.searchParams.delete("before");
    const attrs = {href: url.pathname + url.search, title: `Only entries with ${name} ${value}`, [`data-filter-${name}`]: ""};
    return el("a", attrs, ...(content.length ? content : [value]));
  }

  function detailsJson(text) {
    if (!text) return null;
    let value;
    try { value = JSON.parse(text); } catch (e) { return text; }
    if (value == null || (typeof value === "object" && !Object.keys(value).length)) return null;
    // sorted keys, two spaces: the text the server renders
    const sorted = v => Array.isArray(v) ? v.map(sorted) : v && typeof v === "object"
      ? Object.fromEntries(Object.keys(v).sort().map(k => [k, sorted(v[k])])) : v;
    return JSON.stringify(sorted(value), null, 2);
  }

  function row(e) {
    const facts = [["Entry", `#${e.id}`], ["Time", timeEl(e.timestamp)],
      ["Authenticated", `${e.actor} via ${e.via}${e.role ? `, role ${e.role}` : ""}`]];
    if (e.remoteAddr) facts.push(["From", el("code", {}, e.remoteAddr)]);
    if (e.code) facts.push(["Code", el("code", {}, e.code)]);
    const dl = el("dl", {"class": "facts"}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    if (e.message) dl.append(el("dt", {}, "Message"), el("dd", {"class": e.result !== "ok" ? "error" : ""}, e.message));
    const json = detailsJson(e.details);
    return el("tr", {"data-entry-id": String(e.id), "data-result": e.result},
      el("td", {}, timeEl(e.timestamp)),
      el("td", {}, filterLink("actor", e.actor), el("div", {"class": "muted"}, `${e.role || "no role"} · via ${e.via}`)),
      el("td", {}, filterLink("action", e.action, el("code", {}, e.action))),
      el("td", {"class": "target"}, e.target || ""),
      el("td", {}, e.location ? filterLink("location", e.location) : ""),
      el("td", {}, filterLink("result", e.result, el("span", {"class": `status result-${e.result}`}, e.result)),
        ...(e.code ? [" ", el("code", {"class": "muted"}, e.code)] : [])),
      el("td", {}, el("details", {"data-entry-details": ""}, el("summary", {}, e.message || "details"), dl,
        ...(json ? [el("pre", {"class": "config", "data-details-json": ""}, json)] : []))));
  }

  function olderPages(table) {
    const link = document.getElementById("audit-older");
    if (!link) return;
    const filter = JSON.parse(table.dataset.filter || "{}");
    const limit = Number(table.dataset.pageSize) || 50;
    const error = document.getElementById("audit-error");
    let loading = false;
    link.addEventListener("click", async event => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;  // a new tab: the page itself
      event.preventDefault();
      if (loading) return;
      loading = true;
      link.setAttribute("aria-busy", "true");
      try {
        const data = await gql(QUERY, {...filter, limit, beforeId: Number(link.dataset.before)});
        const page = data.auditLog;
        table.querySelector("tbody").append(...page.entries.map(row));
        const last = page.entries[page.entries.length - 1];
        if (page.hasMore && last) {
          link.dataset.before = String(last.id);
          const url = new URL(link.href);
          url.searchParams.set("before", String(last.id));
          link.href = url.pathname + url.search;
        } else {
          link.remove();
        }
        error.hidden = true;
      } catch (e) {
        error.textContent = `Could not read older entries: ${e.message}`;
        error.hidden = false;
      } finally {
        loading = false;
        link.removeAttribute("aria-busy");
      }
    });
  }

  // empty fields stay out of the URL, so a shared link carries only the filters in use
  function compactForm(form) {
    if (!form) return;
    form.addEventListener("submit", () => {
      form.querySelectorAll("input[name], select[name]").forEach(input => { if (!input.value) input.disabled = true; });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.getElementById("audit");
    if (!table) return;
    compactForm(document.getElementById("audit-filters"));
    olderPages(table);
  });
})();
