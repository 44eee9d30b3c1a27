// runyard web UI: the launchpad page (/locations/<location>/jobs/<job>/launchpad). Uses the helpers of
// app.js (loaded first, as `runyard`).
//
// The editor is a <textarea> laid exactly over a <pre> that shows the same text highlighted: the
// textarea keeps everything a browser gives text input (caret, selection, undo, IME, copy/paste),
// its text is transparent, and the <pre> below draws the colours, the problem underlines and, in
// the gutter, the line numbers and problem markers. No editor library, no build step.
//
// As you type (debounced), the run config, op selection and tags go to GraphQL validateRunConfig:
// the job's code location checks them and every problem comes back with its key path and the line
// and column of its key; Launch stays disabled until there are none.
"use strict";
(() => {
  const {gql, el, latest} = runyard;
  const DEBOUNCE_MS = 300;
  const INDENT = "  ";

  // ---- YAML highlighting ------------------------------------------------------------------------
  const escapeHtml = s => s.replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const NUMBER = /^[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|0x[0-9a-fA-F]+|0o[0-7]+|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$/;
  const BOOLEAN = /^(true|false|True|False|TRUE|FALSE|yes|no|Yes|No|on|off|On|Off)$/;
  const NULL = /^(null|Null|NULL|~)$/;
  // a key: indentation, list markers, then a plain or quoted key followed by ":" and a space or the end
  const KEY = /^(\s*(?:-\s+)*)("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{}\[\],&*!|>%@`-][^#]*?|-[^\s#][^#]*?)(\s*:)(?=\s|$)/;

  // Where a comment starts on a line (a # at the start or after a space, outside quotes), or -1.
  function commentAt(line) {
    let quote = null;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quote) { if (c === quote) quote = null; continue; }
      if ((c === '"' || c === "'") && (i === 0 || /[\s:\[{,-]/.test(line[i - 1]))) quote = c;
      else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) return i;
    }
    return -1;
  }

  function scalarClass(text) {
    const t = text.trim();
    if (!t) return null;
    if (/^["']/.test(t)) return "y-string";
    if (NUMBER.test(t)) return "y-number";
    if (BOOLEAN.test(t)) return "y-bool";
    if (NULL.test(t)) return "y-null";
    if (/^[&*!]/.test(t)) return "y-anchor";
    return "y-plain";
  }

  // The tokens of a value: flow punctuation apart, quoted strings whole, scalars classified.
  function valueTokens(text, at, out) {
    const re = /("(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?)|([{}\[\],])|([^{}\[\],"']+)/g;
    let m;
    while ((m = re.exec(text))) {
      if (m[1]) out.push({start: at + m.index, text: m[1], cls: "y-string"});
      else if (m[2]) out.push({start: at + m.index, text: m[2], cls: "y-punct"});
      else {
        // "key: value" pairs inside a flow mapping: the key part keeps the key colour
        const inner = m[3].match(/^(\s*)([^:]+?)(\s*:)(\s.*|$)/);
        if (inner && /[{,]\s*$/.test(text.slice(0, m.index))) {
          let pos = at + m.index;
          out.push({start: pos, text: inner[1], cls: null}); pos += inner[1].length;
          out.push({start: pos, text: inner[2], cls: "y-key"}); pos += inner[2].length;
          out.push({start: pos, text: inner[3], cls: "y-punct"}); pos += inner[3].length;
          out.push({start: pos, text: inner[4], cls: scalarClass(inner[4])});
        } else out.push({start: at + m.index, text: m[3], cls: scalarClass(m[3])});
      }
    }
  }

  function lineTokens(line) {
    const tokens = [];
    const hash = commentAt(line);
    const body = hash >= 0 ? line.slice(0, hash) : line;
    if (/^(---|\.\.\.)\s*$/.test(body)) tokens.push({start: 0, text: body, cls: "y-punct"});
    else {
      const m = body.match(KEY);
      if (m) {
        tokens.push({start: 0, text: m[1], cls: m[1].includes("-") ? "y-punct" : null});
        tokens.push({start: m[1].length, text: m[2], cls: "y-key"});
        tokens.push({start: m[1].length + m[2].length, text: m[3], cls: "y-punct"});
        valueTokens(body.slice(m[0].length), m[0].length, tokens);
      } else {
        const lead = body.match(/^(\s*(?:-\s+|-$)*)/)[0];
        tokens.push({start: 0, text: lead, cls: lead.includes("-") ? "y-punct" : null});
        valueTokens(body.slice(lead.length), lead.length, tokens);
      }
    }
    if (hash >= 0) tokens.push({start: hash, text: line.slice(hash), cls: "y-comment"});
    return tokens.filter(t => t.text);
  }

  // One line as HTML; the characters in [bad.from, bad.to) are underlined as a problem.
  function lineHtml(line, bad) {
    let html = "";
    for (const t of lineTokens(line)) {
      const pieces = [];
      const end = t.start + t.text.length;
      if (bad && bad.from < end && bad.to > t.start) {
        const a = Math.max(bad.from, t.start) - t.start, b = Math.min(bad.to, end) - t.start;
        pieces.push([t.text.slice(0, a), false], [t.text.slice(a, b), true], [t.text.slice(b), false]);
      } else pieces.push([t.text, false]);
      for (const [text, isBad] of pieces) {
        if (!text) continue;
        let span = escapeHtml(text);
        if (t.cls) span = `<span class="${t.cls}">${span}</span>`;
        if (isBad) span = `<span class="y-problem">${span}</span>`;
        html += span;
      }
    }
    if (bad && bad.from >= line.length) html += `<span class="y-problem y-problem-end"> </span>`;
    return html;
  }

  // ---- the key path at the cursor, for completion ------------------------------------------------
  const indentOf = line => line.match(/^ */)[0].length;
  const keyOf = line => { const m = line.match(KEY); return m ? unquote(m[2].trim()) : null; };
  const unquote = k => /^["'].*["']$/.test(k) ? k.slice(1, -1) : k;

  // The keys of the mappings enclosing a line at `indent` (from the top), and the keys its
  // siblings already use.
  function contextAt(lines, row, indent) {
    const path = [];
    let level = indent;
    let parentRow = -1;
    for (let i = row - 1; i >= 0 && level > 0; i--) {
      const line = lines[i];
      if (!line.trim() || line.trim().startsWith("#")) continue;
      const ind = indentOf(line);
      if (ind < level) {
        const key = keyOf(line);
        if (key === null) return null;  // inside a list or a flow value: no key completion
        path.unshift(key);
        level = ind;
        if (parentRow < 0) parentRow = i;
      }
    }
    const siblings = new Set();
    for (let i = parentRow + 1; i < lines.length; i++) {
      if (i === row) continue;
      const line = lines[i];
      if (!line.trim() || line.trim().startsWith("#")) continue;
      const ind = indentOf(line);
      if (ind < indent && i > row) break;
      if (ind === indent) { const k = keyOf(line); if (k !== null) siblings.add(k); }
    }
    return {path, siblings};
  }

  // ---- the job's config schema: which keys go where ----------------------------------------------
  function resolveRef(schema, root) {
    let s = schema;
    for (let guard = 0; s && guard < 20; guard++) {
      if (s.$ref && s.$ref.startsWith("#/$defs/")) s = (root.$defs || {})[s.$ref.slice(8)];
      else if (!s.properties && (s.anyOf || s.oneOf || s.allOf)) {
        s = (s.anyOf || s.oneOf || s.allOf).find(m => m.$ref || m.properties) || null;
      } else break;
    }
    return s;
  }

  // Each completion: {key, detail, block} (block: its value is a mapping, written on the lines below).
  function fieldsOf(schema, root) {
    const s = resolveRef(schema, root);
    if (!s || !s.properties) return [];
    const required = new Set(s.required || []);
    return Object.entries(s.properties).map(([key, prop]) => {
      const p = resolveRef(prop, root) || prop;
      const type = p.type || (p.properties ? "object" : (prop.anyOf || []).map(m => m.type || "object").join(" | "));
      const dflt = "default" in prop ? ` = ${JSON.stringify(prop.default)}` : "";
      return {key, detail: `${type || "any"}${required.has(key) ? ", required" : dflt}`,
              block: !!(p.properties)};
    });
  }

  // Nested graphs: ops.<graph>.ops.<op>... names the op "<graph>.<op>"; the node a path under ops reaches
  // (dotted), and what follows it. A mapped graph takes config, not ops.
  function nodeAt(schema, path) {
    const graphs = schema.graphs || {};
    let node = null, i = 1;
    while (i < path.length) {
      node = node ? `${node}.${path[i]}` : path[i];
      i += 1;
      if (path[i] === "ops" && graphs[node] && !graphs[node].mapped && i + 1 < path.length) { i += 1; continue; }
      break;
    }
    return {node, rest: path.slice(i)};
  }

  function childrenOf(schema, parent) {
    // the ops and graphs directly inside graph `parent` ("" for the job), by local name
    const local = name => {
      const cut = name.lastIndexOf(".");
      return (cut < 0 ? "" : name.slice(0, cut)) === parent ? name.slice(cut + 1) : null;
    };
    const out = [];
    for (const [path, g] of Object.entries(schema.graphs || {})) {
      const key = local(path);
      if (key !== null) out.push({key, detail: g.mapped ? "graph, config mapping" : "graph", block: true});
    }
    for (const [name, s] of Object.entries(schema.ops || {})) {
      const key = local(name);
      if (key !== null) out.push({key, detail: s ? "op, configurable" : "op, no config", block: true});
    }
    return out;
  }

  function schemaAt(schema, path) {
    // the config schema below ops.<op>.config / resources.<key>.config / execution.<name>, and the rest of the path
    const [top, name, third, ...rest] = path;
    if (top === "ops" && Object.keys(schema.graphs || {}).length) {
      const at = nodeAt(schema, path);
      if (at.rest[0] !== "config") return null;
      const g = (schema.graphs || {})[at.node];
      return {root: g ? (g.mapped ? g.config : null) : (schema.ops || {})[at.node], rest: at.rest.slice(1)};
    }
    if (top === "ops" && third === "config") return {root: (schema.ops || {})[name], rest};
    if (top === "resources" && third === "config") return {root: (schema.resources || {})[name], rest};
    if (top === "execution" && name !== undefined) return {root: (schema.executors || {})[name], rest: path.slice(2)};
    return null;
  }

  function completions(schema, path) {
    const withConfig = (table, what) => Object.entries(table || {}).map(([key, s]) =>
      ({key, detail: s ? `${what}, configurable` : `${what}, no config`, block: true}));
    if (path.length === 0) {
      return [{key: "ops", detail: "op config", block: true}, {key: "resources", detail: "resource config", block: true},
              {key: "execution", detail: "the executor", block: true}, {key: "tags", detail: "run tags", block: true}];
    }
    if (path[0] === "ops" && Object.keys(schema.graphs || {}).length) {
      if (path.length === 1) return childrenOf(schema, "");
      const at = nodeAt(schema, path);
      const g = (schema.graphs || {})[at.node];
      if (g && at.rest.length === 1 && at.rest[0] === "ops" && !g.mapped) return childrenOf(schema, at.node);
      if (at.rest.length === 0) {
        if (g) return [{key: g.mapped ? "config" : "ops", detail: g.mapped ? "graph config" : "the graph's ops", block: true}];
        return (schema.ops || {})[at.node] ? [{key: "config", detail: "config", block: true}] : [];
      }
    }
    if (path.length === 1 && path[0] === "ops") return withConfig(schema.ops, "op");
    if (path.length === 1 && path[0] === "resources") return withConfig(schema.resources, "resource");
    if (path.length === 1 && path[0] === "execution") {
      return Object.keys(schema.executors || {}).map(key => ({key, detail: "executor", block: true}));
    }
    if (path.length === 2 && (path[0] === "ops" || path[0] === "resources")) {
      const table = path[0] === "ops" ? schema.ops : schema.resources;
      return table && table[path[1]] ? [{key: "config", detail: "config", block: true}] : [];
    }
    const at = schemaAt(schema, path);
    if (!at || !at.root) return [];
    let s = at.root;
    for (const key of at.rest) {
      const r = resolveRef(s, at.root);
      s = r && r.properties ? r.properties[key] : null;
      if (!s) return [];
    }
    return fieldsOf(s, at.root);
  }

  // ---- the editor ------------------------------------------------------------------------------------
  function editor(root, data, onChange) {
    const area = root.querySelector("#run-config");
    const pre = root.querySelector("#highlight");
    const gutter = root.querySelector("#gutter");
    const popup = root.querySelector("#completions");
    const cursorProblem = root.querySelector("#cursor-problem");
    let problems = new Map();  // line -> [problem]
    let items = [], active = 0, replaceFrom = 0;

    function render() {
      const lines = area.value.split("\n");
      let html = "";
      const numbers = [];
      lines.forEach((line, i) => {
        const here = problems.get(i + 1);
        let bad = null;
        if (here) {
          // underline the key the problem names (from its column to the end of the key), else the line
          const col = Math.max(0, (here[0].column || 1) - 1);
          const rest = line.slice(col);
          const m = rest.match(/^("[^"]*"|'[^']*'|[^\s:]+)/);
          bad = {from: col, to: col + (m ? m[0].length : Math.max(1, rest.length))};
        }
        html += lineHtml(line, bad) + "\n";
        const title = here ? here.map(p => (p.path ? `${p.path}: ` : "") + p.reason).join("\n") : null;
        numbers.push(el("div", here ? {"class": "ln bad", title, "data-line": i + 1} : {"class": "ln", "data-line": i + 1},
          here ? el("span", {"class": "marker"}, "●") : "", String(i + 1)));
      });
      pre.innerHTML = html;
      gutter.replaceChildren(...numbers);
      // the textarea is as large as its text, so the editor box (not the textarea) scrolls
      area.style.height = "0px";
      area.style.height = `${Math.max(pre.scrollHeight, area.scrollHeight)}px`;
      area.style.width = "0px";
      area.style.width = `${Math.max(pre.scrollWidth, area.scrollWidth, area.parentElement.clientWidth)}px`;
      showCursorProblem();
    }

    const caretRow = () => area.value.slice(0, area.selectionStart).split("\n").length;
    function showCursorProblem() {
      const here = problems.get(caretRow());
      cursorProblem.hidden = !here;
      cursorProblem.textContent = here ? `Line ${caretRow()}: ` + here.map(p => (p.path ? `${p.path}: ` : "") + p.reason).join("; ") : "";
    }

    function setProblems(list) {
      problems = new Map();
      for (const p of list) {
        if (!p.line) continue;
        if (!problems.has(p.line)) problems.set(p.line, []);
        problems.get(p.line).push(p);
      }
      render();
    }

    // ---- completion ----
    const metrics = (() => {
      const probe = el("span", {"class": "probe"}, "M".repeat(10));
      pre.append(probe);
      const r = probe.getBoundingClientRect();
      probe.remove();
      return {w: r.width / 10 || 8, h: r.height || 19};
    })();

    function openCompletions(force) {
      const value = area.value;
      const pos = area.selectionStart;
      if (pos !== area.selectionEnd) return closeCompletions();
      const lineStart = value.lastIndexOf("\n", pos - 1) + 1;
      const before = value.slice(lineStart, pos);
      const m = before.match(/^( *)([A-Za-z0-9_./-]*)$/);
      if (!m || (!force && !m[2])) return closeCompletions();
      const lines = value.split("\n");
      const row = value.slice(0, lineStart).split("\n").length - 1;
      const ctx = contextAt(lines, row, m[1].length);
      if (!ctx) return closeCompletions();
      const prefix = m[2].toLowerCase();
      items = completions(data.schema, ctx.path)
        .filter(c => !ctx.siblings.has(c.key) && c.key.toLowerCase().startsWith(prefix) && c.key !== m[2]);
      if (!items.length) return closeCompletions();
      replaceFrom = lineStart + m[1].length;
      active = 0;
      popup.replaceChildren(...items.map((c, i) => el("li", {role: "option", "data-key": c.key, "data-index": i},
        el("code", {}, c.key), el("span", {"class": "muted"}, c.detail))));
      popup.style.top = `${(row + 1) * metrics.h + 6}px`;
      popup.style.left = `${m[1].length * metrics.w + 8}px`;
      popup.hidden = false;
      highlightActive();
    }

    function closeCompletions() { popup.hidden = true; items = []; }
    function highlightActive() {
      popup.querySelectorAll("li").forEach((li, i) => li.classList.toggle("active", i === active));
      const li = popup.children[active];
      if (li) li.scrollIntoView({block: "nearest"});
    }

    function insert(text, from, to) {
      area.focus();
      area.setSelectionRange(from, to);
      // execCommand keeps the browser's undo history; setRangeText is the fallback
      if (!document.execCommand("insertText", false, text)) {
        area.setRangeText(text, from, to, "end");
        area.dispatchEvent(new Event("input"));
      }
    }

    function accept(i) {
      const c = items[i];
      if (!c) return;
      const indent = area.value.slice(area.value.lastIndexOf("\n", replaceFrom - 1) + 1, replaceFrom);
      closeCompletions();
      insert(c.block ? `${c.key}:\n${indent}${INDENT}` : `${c.key}: `, replaceFrom, area.selectionStart);
    }

    popup.addEventListener("mousedown", ev => {
      const li = ev.target.closest("li");
      if (!li) return;
      ev.preventDefault();
      accept(Number(li.dataset.index));
    });

    // ---- keys: completion navigation, Tab indents, Enter keeps the indentation ----
    area.addEventListener("keydown", ev => {
      if (!popup.hidden) {
        if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
          ev.preventDefault();
          active = (active + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
          return highlightActive();
        }
        if (ev.key === "Enter" || ev.key === "Tab") { ev.preventDefault(); return accept(active); }
        if (ev.key === "Escape") { ev.preventDefault(); return closeCompletions(); }
      }
      if (ev.key === " " && ev.ctrlKey) { ev.preventDefault(); return openCompletions(true); }
      if (ev.key === "Tab") { ev.preventDefault(); return indent(ev.shiftKey); }
      if (ev.key === "Enter" && !ev.ctrlKey && !ev.metaKey) {
        ev.preventDefault();
        const value = area.value, pos = area.selectionStart;
        const line = value.slice(value.lastIndexOf("\n", pos - 1) + 1, pos);
        const lead = line.match(/^ */)[0] + (/:\s*$/.test(line) ? INDENT : "");
        return insert("\n" + lead, pos, area.selectionEnd);
      }
    });

    function indent(outdent) {
      const value = area.value;
      const {selectionStart: s, selectionEnd: e} = area;
      const first = value.lastIndexOf("\n", s - 1) + 1;
      if (!outdent && s === e) return insert(INDENT, s, e);
      const lastEnd = value.indexOf("\n", e - (e > s && value[e - 1] === "\n" ? 1 : 0));
      const end = lastEnd < 0 ? value.length : lastEnd;
      const block = value.slice(first, end).split("\n")
        .map(l => outdent ? l.replace(/^ {1,2}/, "") : INDENT + l).join("\n");
      insert(block, first, end);
      area.setSelectionRange(first, first + block.length);
    }

    area.addEventListener("input", ev => {
      render();
      onChange();
      if (ev.inputType && ev.inputType.startsWith("insert") && !/\n/.test(ev.data || "")) openCompletions(false);
      else closeCompletions();
    });
    area.addEventListener("blur", () => setTimeout(closeCompletions, 150));
    for (const type of ["click", "keyup"]) area.addEventListener(type, showCursorProblem);
    gutter.addEventListener("click", ev => {
      const ln = ev.target.closest(".ln");
      if (ln) goToLine(Number(ln.dataset.line));
    });

    function goToLine(n) {
      const lines = area.value.split("\n");
      const at = lines.slice(0, n - 1).reduce((sum, l) => sum + l.length + 1, 0) + indentOf(lines[n - 1] || "");
      area.focus();
      area.setSelectionRange(at, at);
      const box = root.querySelector("#editor");
      box.scrollTop = Math.max(0, (n - 3) * metrics.h);
      showCursorProblem();
    }

    render();
    return {setProblems, goToLine, value: () => area.value};
  }

  // ---- the tags editor ------------------------------------------------------------------------------
  function tagsEditor(root, data, onChange) {
    const tbody = root.querySelector("#tags-editor tbody");
    const userTags = new Set(data.userTags || []);

    function problemOf(key, keys) {
      if (!key) return "give the tag a key";
      if (key.startsWith("runyard/") && !userTags.has(key)) {
        return `'${key}' is reserved: runyard sets runyard/* tags itself (a user may set only ${[...userTags].sort().join(", ")})`;
      }
      if (keys.filter(k => k === key).length > 1) return "this key is given twice";
      return null;
    }

    function check() {
      const rows = [...tbody.querySelectorAll("tr")];
      const keys = rows.map(r => r.querySelector(".tag-key").value.trim());
      let bad = 0;
      rows.forEach((row, i) => {
        const value = row.querySelector(".tag-value").value;
        const problem = keys[i] || value ? problemOf(keys[i], keys) : null;  // an empty row is ignored
        const note = row.querySelector(".tag-problem");
        note.textContent = problem || "";
        note.hidden = !problem;
        row.classList.toggle("bad", !!problem);
        row.querySelector(".tag-key").setAttribute("aria-invalid", problem ? "true" : "false");
        if (problem) bad++;
      });
      return bad;
    }

    function addRow(key = "", value = "") {
      const keyInput = el("input", {type: "text", "class": "tag-key", placeholder: "key", "aria-label": "tag key", spellcheck: "false"});
      const valueInput = el("input", {type: "text", "class": "tag-value", placeholder: "value", "aria-label": "tag value", spellcheck: "false"});
      keyInput.value = key;
      valueInput.value = value;
      const remove = el("button", {type: "button", "class": "small secondary remove-tag", title: "Remove this tag"}, "Remove");
      const row = el("tr", {}, el("td", {}, keyInput, el("div", {"class": "tag-problem error", hidden: ""})),
        el("td", {}, valueInput), el("td", {}, remove));
      remove.addEventListener("click", () => { row.remove(); onChange(); });
      for (const input of [keyInput, valueInput]) input.addEventListener("input", onChange);
      tbody.append(row);
      return keyInput;
    }

    root.querySelector("#add-tag").addEventListener("click", () => { addRow().focus(); onChange(); });
    for (const [k, v] of Object.entries(data.tags || {})) addRow(k, v);

    const tags = () => [...tbody.querySelectorAll("tr")]
      .map(r => ({key: r.querySelector(".tag-key").value.trim(), value: r.querySelector(".tag-value").value}))
      .filter(t => t.key || t.value);
    return {check, tags};
  }

  // ---- the partition of a partitioned job (docs/partitions.md) ---------------------------------------
  // Picking a key asks the code location for the partition's run config (GraphQL Job.partitionRun) and
  // puts it in the editor, which checks it as if typed; the launch then runs that partition.
  function partitionPicker(root, data) {
    const input = root.querySelector("#partition");
    if (!input || !data.partitions) return {key: () => null};
    const status = root.querySelector("#partition-status");
    const area = root.querySelector("#run-config");
    root.querySelector("#partition-keys").replaceChildren(...data.partitions.keys.map(k => el("option", {value: k})));
    let asked = 0;

    async function load() {
      const key = input.value.trim();
      const mine = ++asked;
      input.dataset.state = "pending";
      if (!key) { status.textContent = ""; input.dataset.state = ""; return; }
      status.textContent = "Loading the partition's run config…";
      let answer;
      try {
        const result = await gql(`query($loc: String!, $job: String!, $key: String!) {
          job(location: $loc, name: $job) { partitionRun(partitionKey: $key) { ok code message runConfigYaml } } }`,
          {loc: data.location, job: data.job, key});
        answer = result.job ? result.job.partitionRun : {ok: false, message: "the job is gone from its location"};
      } catch (e) {
        answer = {ok: false, message: e.message};
      }
      if (mine !== asked) return;
      input.dataset.state = answer.ok ? "loaded" : "error";
      status.textContent = answer.ok ? `The run config of partition ${key}.` : answer.message;
      status.className = answer.ok ? "muted" : "error";
      if (answer.ok) {
        area.value = answer.runConfigYaml || "";
        area.dispatchEvent(new Event("input"));  // drawn and checked as if typed
      }
    }

    input.addEventListener("change", load);
    if (data.partitions.selected) { input.value = data.partitions.selected; load(); }
    else if (data.partitions.fromRun) {  // the run's own config stays in the editor
      input.value = data.partitions.fromRun;
      status.textContent = `Partition ${data.partitions.fromRun}, as the run was.`;
    }
    return {key: () => input.value.trim() || null};  // the server checks the key at launch
  }

  // ---- the page ------------------------------------------------------------------------------------
  function launchpad(root) {
    const data = JSON.parse(root.querySelector("#launchpad-data").textContent);
    const form = root.querySelector("#launchpad-form");
    const status = root.querySelector("#validation-status");
    const list = root.querySelector("#problems");
    const launch = root.querySelector("#launch");
    const launchErrors = root.querySelector("#launch-errors");
    const ops = root.querySelector("#ops");
    const selected = root.querySelector("#selected-steps");
    const readOnly = launch.hasAttribute("data-read-only");
    // the principal's role may not launch here: the button keeps the server's title naming the role
    const refused = runyard.forbidden(launch) ? launch.title : "";
    let valid = false, tagProblems = 0, launching = false;
    const validation = latest(validate, DEBOUNCE_MS);

    const changed = () => {
      tagProblems = tags.check();
      valid = false;
      updateLaunch();
      setStatus("pending", "Checking…");
      validation.soon();
    };
    const ed = editor(root, data, changed);
    const tags = tagsEditor(root, data, changed);
    ops.addEventListener("input", changed);
    const partition = partitionPicker(root, data);

    function setStatus(state, text) {
      status.dataset.state = state;
      status.textContent = text;
    }

    function updateLaunch() {
      launch.disabled = readOnly || Boolean(refused) || launching || !valid || tagProblems > 0;
      launch.title = readOnly ? "This web UI is read-only" : refused ? refused : tagProblems ? "Fix the tags first"
        : !valid ? "Fix the problems first" : "";
    }

    async function validate(current) {
      let answer;
      try {
        const result = await gql(`query($loc: String!, $job: String!, $cfg: String, $ops: String, $tags: [TagInput!]) {
          validateRunConfig(location: $loc, jobName: $job, runConfigYaml: $cfg, ops: $ops, tags: $tags) {
            valid code message stepKeys errors { message reason path source line column } } }`,
          {loc: data.location, job: data.job, cfg: ed.value(), ops: ops.value.trim() || null,
           tags: tags.tags().filter(t => t.key)});
        answer = result.validateRunConfig;
      } catch (e) {
        answer = {valid: false, code: "ERROR", message: e.message, errors: []};
      }
      if (!current()) return;  // an older answer, overtaken by a newer edit
      show(answer);
    }

    function show(answer) {
      valid = answer.valid;
      const errors = answer.errors || [];
      ed.setProblems(errors);
      list.replaceChildren(...errors.map(p => {
        const item = el("li", {"data-path": p.path || "", "data-line": p.line || "", "data-source": p.source || ""},
          p.path ? el("code", {"class": "path"}, p.path) : "", p.path ? " " : "", p.path ? p.reason || p.message : p.message,
          p.line ? el("a", {href: "#", "class": "line-link"}, ` line ${p.line}${p.column ? `:${p.column}` : ""}`) : "");
        const link = item.querySelector(".line-link");
        if (link) link.addEventListener("click", ev => { ev.preventDefault(); ed.goToLine(p.line); });
        return item;
      }));
      list.hidden = errors.length === 0;
      if (answer.code) setStatus("unavailable", answer.message);
      else if (valid) setStatus("valid", "The run config is valid.");
      else setStatus("invalid", `${errors.length} problem${errors.length === 1 ? "" : "s"}: fix ${errors.length === 1 ? "it" : "them"} to launch.`);
      selected.textContent = valid && answer.stepKeys ? `Runs ${answer.stepKeys.length} step(s): ${answer.stepKeys.join(", ")}` : "";
      updateLaunch();
    }

    form.addEventListener("submit", async ev => {
      ev.preventDefault();
      if (launch.disabled) return;
      launching = true;
      updateLaunch();
      launchErrors.hidden = true;
      try {
        const result = await gql(`mutation($loc: String!, $job: String!, $cfg: String, $tags: [TagInput!], $ops: String,
                                           $partition: String) {
          launchRun(location: $loc, jobName: $job, runConfigYaml: $cfg, tags: $tags, ops: $ops, partitionKey: $partition) {
            ok message code run { runId } errors { message path } } }`,
          {loc: data.location, job: data.job, cfg: ed.value(), tags: tags.tags(), ops: ops.value.trim() || null,
           partition: partition.key()});
        const p = result.launchRun;
        if (p.run) { window.location.href = `/runs/${p.run.runId}`; return; }
        // the config changed on the location since it was checked: say so, and check again
        const items = p.errors.length ? p.errors.map(e => e.message) : [p.message];
        launchErrors.replaceChildren(...items.map(m => el("li", {}, m)));
        launchErrors.hidden = false;
        validation.now();
      } catch (e) {
        launchErrors.replaceChildren(el("li", {}, e.message));
        launchErrors.hidden = false;
      } finally {
        launching = false;
        updateLaunch();
      }
    });

    tagProblems = tags.check();
    validation.now();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("launchpad");
    if (root && root.querySelector("#launchpad-data")) launchpad(root);
  });
})();
