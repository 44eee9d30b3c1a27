// runyard web UI: the helpers every page's script uses, exported as `runyard`: GraphQL (gql, latest),
// live updates (subscribe: server-sent events), elements (el) and times in the page's zone.
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

  // A question asked again as the user types, where only the newest answer counts (the launchpad's
  // validation, the job page's op selection): `soon()` asks `delayMs` after the last call, `now()` at
  // once. `ask(current)` gets a check to make after each await: false once a newer question was asked,
  // so an older answer that arrives late is dropped instead of drawn over the newer one.
  function latest(ask, delayMs) {
    let timer = null, asked = 0;
    const run = () => { const mine = ++asked; return ask(() => mine === asked); };
    return {
      soon() { clearTimeout(timer); timer = setTimeout(run, delayMs); },
      now() { clearTimeout(timer); return run(); },
    };
  }

  const FINISHED = new Set(["SUCCESS", "FAILURE", "CANCELED"]);
  const TERMINABLE = new Set(["NOT_STARTED", "QUEUED", "STARTING", "STARTED"]);

  // ---- live updates: server-sent events from /live/... (docs/webui.md, "Live updates") -------------
  // subscribe(path, onMessage, {onEnd}) opens one EventSource on `path` and calls onMessage with each
  // message's JSON. The browser reconnects by itself after a dropped connection (resuming from the last
  // message's id); a refused stream (an error status) is opened again here, a little later each time.
  // The server's `end` event (the run finished, the step's output is complete) closes it and calls onEnd;
  // onOpen and onError say when the stream is up and when it dropped. Returns {close()}.
  function subscribe(path, onMessage, {onEnd, onError, onOpen} = {}) {
    let source = null, closed = false, timer = null, failures = 0, lastId = "";
    const url = () => {
      if (!lastId) return path;
      const u = new URL(path, window.location.href);
      u.searchParams.set("lastEventId", lastId);  // what the browser sends as Last-Event-ID on its own
      return u.pathname + u.search;
    };
    const close = () => {
      closed = true;
      clearTimeout(timer);
      if (source) source.close();
    };
    const open = () => {
      if (closed) return;
      source = new EventSource(url());
      source.onopen = () => { if (onOpen) onOpen(); };
      source.onmessage = e => {
        failures = 0;
        if (e.lastEventId) lastId = e.lastEventId;
        let data;
        try { data = JSON.parse(e.data); } catch (err) { return; }
        onMessage(data);
      };
      source.addEventListener("end", () => {
        close();
        if (onEnd) onEnd();
      });
      source.onerror = () => {
        if (onError) onError();
        if (closed || source.readyState !== EventSource.CLOSED) return;  // CONNECTING: the browser retries
        failures += 1;
        timer = setTimeout(open, Math.min(30000, 1000 * 2 ** Math.min(failures, 5)));
      };
    };
    open();
    return {close};
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return node;
  }

  // ---- times: the zone the server rendered in (body[data-zone], from the runyard_tz cookie), and the
  // exact strings of the server's `when` / `clock` filters (webui/runyard_webui/times.py) --------------
  const ZONE_COOKIE = "runyard_tz";
  const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const zone = () => (document.body && document.body.dataset.zone) || "UTC";
  const formatters = new Map();
  function timeParts(ts, tz) {
    let f = formatters.get(tz);
    if (!f) {
      f = new Intl.DateTimeFormat("en-US", {timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "longOffset"});
      formatters.set(tz, f);
    }
    const ms = Math.trunc(ts * 1000);  // truncated to the millisecond, as the server does
    const p = Object.fromEntries(f.formatToParts(new Date(ms)).map(x => [x.type, x.value]));
    // "GMT+01:00" -> "+01:00"; plain "GMT" is UTC itself
    const off = p.timeZoneName.replace(/^GMT/, "") || "+00:00";
    return {...p, offset: /^[+-]\d{2}$/.test(off) ? off + ":00" : off, millis: ((ms % 1000) + 1000) % 1000};
  }
  const formatWhen = (ts, tz) => {
    if (ts == null) return "";
    const p = timeParts(ts, tz);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.offset}`;
  };
  const formatClock = (ts, tz) => {
    if (ts == null) return "";
    const p = timeParts(ts, tz);
    return `${p.hour}:${p.minute}:${p.second}.${String(p.millis).padStart(3, "0")}`;
  };
  const when = ts => formatWhen(ts, zone());
  const clock = ts => formatClock(ts, zone());
  // a <time> element like the server's `timetag` filter: redrawn in place when the zone changes
  // (`fixedZone`: drawn in that zone and named after it, e.g. a schedule's own timezone; never redrawn)
  function timeEl(ts, format = "when", fixedZone = null) {
    if (ts == null) return document.createTextNode("");
    const node = el("time", {datetime: new Date(Math.trunc(ts * 1000)).toISOString(), "data-ts": String(ts),
                             "data-format": format});
    if (fixedZone) node.dataset.zone = fixedZone;
    drawTime(node);
    return node;
  }
  function drawTime(t) {
    const ts = Number(t.dataset.ts);
    const tz = t.dataset.zone || zone();
    const text = t.dataset.format === "clock" ? formatClock(ts, tz) : formatWhen(ts, tz);
    t.textContent = t.dataset.zone ? `${text} ${tz}` : text;
    t.title = `${when(ts)} (${zone()})`;
  }
  function redrawTimes(root = document) {
    root.querySelectorAll("time[data-ts]").forEach(drawTime);
  }
  function readZoneCookie() {
    const found = document.cookie.split("; ").find(c => c.startsWith(ZONE_COOKIE + "="));
    return found ? found.slice(ZONE_COOKIE.length + 1) : null;
  }
  function writeZoneCookie(value) {
    // zone names are letters, digits and _+-/ : a cookie value as is, which the server reads unchanged
    if (!/^[A-Za-z0-9_+\-\/:]+$/.test(value)) return;
    document.cookie = `${ZONE_COOKIE}=${value}; path=/; max-age=31536000; samesite=lax`;
  }
  // The zone selector and the first visit: without a cookie the server rendered UTC, so store the
  // browser's zone (marked "auto:", followed when the browser's zone changes) and redraw once; a zone
  // picked in the selector is stored as is and the page reloaded, so every time on it is the server's.
  function setUpZone() {
    const cookie = readZoneCookie();
    const browser = browserZone();
    const body = document.body;
    if (cookie === null || (cookie.startsWith("auto:") && cookie !== `auto:${browser}`)) {
      writeZoneCookie(`auto:${browser}`);
      if (readZoneCookie() === `auto:${browser}` && body.dataset.zone !== browser) {
        body.dataset.zone = browser;
        body.dataset.zoneSource = "auto";
        redrawTimes();
      }
    }
    const select = document.querySelector("[data-zone-select]");
    if (!select) return;
    const auto = select.querySelector("option[value='auto']");
    if (auto) auto.textContent = `browser's zone (${browser})`;
    const have = new Set([...select.options].map(o => o.value));
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    for (const z of zones) if (!have.has(z)) select.append(el("option", {value: z}, z));
    select.addEventListener("change", () => {
      writeZoneCookie(select.value === "auto" ? `auto:${browser}` : select.value);
      window.location.reload();
    });
  }
  const seconds = s => s == null ? "" : s < 1 ? `${Math.round(s * 1000)} ms` : s < 120 ? `${s.toFixed(2)} s` : `${(s / 60).toFixed(1)} min`;
  const statusBadge = s => el("span", {"class": `status status-${(s || "").toLowerCase()}`, "data-status": ""}, s || "");

  function setStatus(container, status) {
    const badge = container.querySelector("[data-status]");
    badge.textContent = status;
    badge.className = `status status-${status.toLowerCase()}`;
  }

  const errorText = data => (data && data.traceback ? "\n" + data.traceback : "");

  // ---- what the signed-in principal may do (body[data-can]: the action labels its role allows, from
  // pages.py). The server refuses the rest anyway; a control rendered disabled for that carries
  // data-needs (the role it needs) and its title, and scripts keep it disabled.
  const can = action => ((document.body && document.body.dataset.can) || "").split(" ").includes(action);
  const forbidden = node => node.hasAttribute("data-needs");

  // Pages start their own part (static/<page>.js) on DOMContentLoaded; they carry no inline script,
  // so the Content-Security-Policy can forbid inline scripts altogether (docs/webui.md, "Security defaults").
  document.addEventListener("DOMContentLoaded", () => {
    setUpZone();
    document.querySelectorAll("select[data-submit-on-change]").forEach(select =>
      // requestSubmit: the form's submit listeners run (they keep empty fields out of the URL)
      select.addEventListener("change", () => select.form.requestSubmit()));
  });

  return {gql, latest, subscribe, el, when, clock, zone, formatWhen, formatClock, timeEl, redrawTimes, seconds,
          statusBadge, setStatus, errorText, can, forbidden, FINISHED, TERMINABLE};
})();
