// runyard web UI: the job page's op graph. Uses the helpers of app.js (loaded first, as `runyard`).
//
// The ops arrive as JSON in <script type="application/json" id="job-graph-data"> (the job snapshot's
// ops: inputs with their upstream outputs, outputs with their types, config schema, resources, retry
// policy). They are laid out here as a layered graph flowing left to right, in four steps written
// for this page (docs/webui.md, "The job page"):
//   1. layers: longest path from the sources (a source moves right to sit just before its first
//      consumer, so it does not drag a long edge across the graph);
//   2. an edge spanning several layers gets a virtual node in each layer it crosses, so it is
//      ordered and routed like a node and never runs through one;
//   3. order within layers: barycenter sweeps down and up, each followed by swaps of neighbours that
//      remove crossings, keeping the order with fewest crossings;
//   4. coordinates: layers are columns; within a column each node is pulled toward the ports it is
//      linked to, as a least-squares fit under "in order, never overlapping" (pool adjacent violators).
// Op selection is evaluated by the server (GraphQL `Job.opSelection`), with the same parser as a
// launch, so what is highlighted is exactly what a launch of that selection runs.
"use strict";
(() => {
  const {gql, el, latest, seconds} = runyard;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // geometry of a node (px, before zoom)
  const G = {
    headH: 28, rowH: 19, sectionPad: 5, padX: 12, portR: 4, minW: 150, maxW: 420,
    layerGap: 110, nodeGap: 22, virtualGap: 10, margin: 30,
    boxPad: 8, boxLabel: 16,  // a nested graph's box: padding around its ops, and its label's height on top
  };
  const NOTHING = "Nothing";
  // steps often take well under a millisecond: keep a digit or two there instead of "0 ms"
  const duration = s => s < 0.01 ? `${(s * 1000).toFixed(2)} ms` : s < 1 ? `${(s * 1000).toFixed(1)} ms` : seconds(s);

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return node;
  }

  // ---- the graph's model -------------------------------------------------------------------------
  // One drawn edge per (upstream output -> input) pair: a fan-in input gets one per source.
  function buildModel(ops) {
    const byName = new Map(ops.map(op => [op.name, op]));
    const edges = [];
    for (const op of ops) {
      op.inputs.forEach((input, inputIndex) => {
        for (const up of input.upstream) {
          const source = byName.get(up.op);
          if (!source) continue;
          const outputIndex = source.outputs.findIndex(o => o.name === up.output);
          const output = source.outputs[outputIndex];
          edges.push({from: up.op, output: up.output, outputIndex, to: op.name, input: input.name, inputIndex,
                      nothing: !!output && output.type === NOTHING, fanIn: !!input.fan_in,
                      // dynamic fan-out: one value per mapping key (`op[key]` steps), or all of them collected
                      mapped: !!input.mapped, collect: !!input.collect});
        }
      });
    }
    return {ops, byName, edges};
  }

  // ---- layout (pure: sizes in, positions out) --------------------------------------------------
  // `sizes` maps an op to {w, h, inY: [port y per input], outY: [port y per output]} relative to the
  // node's top left. Returns {nodes: Map(name -> {x, y, w, h, layer}), routes: [points per edge],
  // width, height}.
  function layout(model, sizes) {
    const names = model.ops.map(op => op.name);
    // nested graphs' boxes need room around the ops: the outermost box's padding and labels
    const deepest = Math.max(0, ...names.map(n => graphDepth(graphOf(n))));
    const margin = G.margin + deepest * (G.boxPad + G.boxLabel);
    const ups = new Map(names.map(n => [n, new Set()]));
    const downs = new Map(names.map(n => [n, new Set()]));
    for (const e of model.edges) { ups.get(e.to).add(e.from); downs.get(e.from).add(e.to); }

    // 1. longest-path layers, in an order where every op follows its upstream ops
    const layerOf = new Map();
    const order = [];
    const visiting = new Set();
    const visit = n => {
      if (layerOf.has(n)) return layerOf.get(n);
      if (visiting.has(n)) throw new Error(`the graph has a cycle through ${n}`);
      visiting.add(n);
      let layer = 0;
      for (const u of ups.get(n)) layer = Math.max(layer, visit(u) + 1);
      visiting.delete(n);
      layerOf.set(n, layer);
      order.push(n);
      return layer;
    };
    names.forEach(visit);
    for (const n of names) {
      if (ups.get(n).size === 0 && downs.get(n).size > 0) {
        layerOf.set(n, Math.min(...[...downs.get(n)].map(d => layerOf.get(d))) - 1);
      }
    }
    const layerCount = Math.max(...layerOf.values()) + 1;

    // 2. items of each layer: ops, and a virtual node per layer crossed by a link between two ops
    // (a link is an (upstream op, downstream op) pair; the edges between one pair share its chain)
    const items = new Map();  // id -> {id, layer, real, w, h, ups: [{id, dy}], downs: [{id, dy}]}
    const add = (id, layer, real, size) => {
      const item = {id, layer, real, w: size ? size.w : 0, h: size ? size.h : 0, ups: [], downs: []};
      items.set(id, item);
      return item;
    };
    for (const n of order) add(n, layerOf.get(n), true, sizes.get(n));
    const chains = new Map();  // "from\u0000to" -> [virtual ids]
    for (const from of order) {
      for (const to of downs.get(from)) {
        const chain = [];
        for (let l = layerOf.get(from) + 1; l < layerOf.get(to); l++) {
          chain.push(add(`\u0000${from}\u0000${to}\u0000${l}`, l, false).id);
        }
        chains.set(`${from}\u0000${to}`, chain);
      }
    }
    // links between consecutive layers, with where each end attaches (port y, relative to the top);
    // several edges between one pair pull with the mean of their ports
    const portPairs = new Map();
    for (const e of model.edges) {
      const key = `${e.from}\u0000${e.to}`;
      if (!portPairs.has(key)) portPairs.set(key, []);
      portPairs.get(key).push([sizes.get(e.from).outY[e.outputIndex] ?? 0, sizes.get(e.to).inY[e.inputIndex] ?? 0]);
    }
    for (const [key, pairs] of portPairs) {
      const [from, to] = key.split("\u0000");
      const outDy = pairs.reduce((s, p) => s + p[0], 0) / pairs.length;
      const inDy = pairs.reduce((s, p) => s + p[1], 0) / pairs.length;
      const path = [from, ...chains.get(key), to];
      for (let i = 0; i + 1 < path.length; i++) {
        const a = items.get(path[i]), b = items.get(path[i + 1]);
        const aDy = i === 0 ? outDy : 0, bDy = i + 2 === path.length ? inDy : 0;
        a.downs.push({id: b.id, dy: aDy, other: bDy});
        b.ups.push({id: a.id, dy: bDy, other: aDy});
      }
    }

    // 3. order within layers by barycenter sweeps, starting from the order of discovery
    const layers = Array.from({length: layerCount}, () => []);
    for (const item of items.values()) layers[item.layer].push(item);
    const pos = new Map();
    const index = () => layers.forEach(layer => layer.forEach((item, i) => pos.set(item.id, i)));
    index();
    const sweep = down => {
      const range = down ? [...Array(layerCount).keys()].slice(1) : [...Array(layerCount).keys()].reverse().slice(1);
      for (const l of range) {
        const bary = new Map();
        for (const item of layers[l]) {
          const ns = down ? item.ups : item.downs;
          bary.set(item.id, ns.length ? ns.reduce((s, n) => s + pos.get(n.id), 0) / ns.length : pos.get(item.id));
        }
        layers[l].sort((a, b) => bary.get(a.id) - bary.get(b.id) || pos.get(a.id) - pos.get(b.id));
        layers[l].forEach((item, i) => pos.set(item.id, i));
      }
    };
    const crossings = () => {
      let total = 0;
      for (let l = 0; l + 1 < layerCount; l++) {
        // inversions of the lower ends, with the links sorted by their upper end (a Fenwick tree)
        const links = [];
        for (const item of layers[l]) for (const d of item.downs) links.push([pos.get(item.id), pos.get(d.id)]);
        links.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        const size = layers[l + 1].length + 1;
        const tree = new Array(size + 1).fill(0);
        let seen = 0;
        for (const [, lower] of links) {
          let greater = seen;
          for (let i = lower + 1; i > 0; i -= i & -i) greater -= tree[i];
          total += greater;
          for (let i = lower + 1; i <= size; i += i & -i) tree[i] += 1;
          seen += 1;
        }
      }
      return total;
    };
    // then swap neighbours while that removes crossings with the layers on both sides
    const pairCrossings = (u, v) => {
      let c = 0;
      for (const side of ["ups", "downs"]) {
        for (const a of u[side]) for (const b of v[side]) if (pos.get(a.id) > pos.get(b.id)) c++;
      }
      return c;
    };
    const transpose = () => {
      for (let pass = 0, improved = true; improved && pass < 8; pass++) {
        improved = false;
        for (const layer of layers) {
          for (let i = 0; i + 1 < layer.length; i++) {
            const u = layer[i], v = layer[i + 1];
            if (pairCrossings(v, u) < pairCrossings(u, v)) {
              layer[i] = v; layer[i + 1] = u;
              pos.set(v.id, i); pos.set(u.id, i + 1);
              improved = true;
            }
          }
        }
      }
    };
    let best = crossings(), bestOrder = layers.map(layer => layer.slice());
    for (let round = 0; round < 24 && best > 0; round++) {
      sweep(round % 2 === 0);
      transpose();
      const c = crossings();
      if (c < best) { best = c; bestOrder = layers.map(layer => layer.slice()); }
    }
    bestOrder.forEach((layer, l) => { layers[l] = layer; });
    if (deepest) layers.forEach(clusterByGraph);
    index();

    // 4. coordinates: columns left to right; in a column, y fitted to the linked ports
    const x = [];
    let cursor = margin;
    for (let l = 0; l < layerCount; l++) {
      x.push(cursor);
      cursor += Math.max(0, ...layers[l].map(item => item.w)) + G.layerGap;
    }
    const width = cursor - G.layerGap + margin;
    const y = new Map();
    for (const layer of layers) {
      let top = 0;
      layer.forEach((item, i) => {
        y.set(item.id, top);
        top += item.h + gapAfter(layer, i);
      });
    }
    const place = (l, wanted) => {
      // least squares of (y - wanted) with y[i+1] >= y[i] + h[i] + gap[i]: shift each item by the
      // room the ones before it need, then the fit is an isotonic regression (pool adjacent violators)
      const layer = layers[l];
      const offsets = [];
      let off = 0;
      layer.forEach((item, i) => { offsets.push(off); off += item.h + gapAfter(layer, i); });
      const blocks = [];  // {sum, weight, count}
      layer.forEach((item, i) => {
        const w = item.real ? 2 : 1;
        blocks.push({sum: w * (wanted[i] - offsets[i]), weight: w, count: 1});
        while (blocks.length > 1) {
          const b = blocks[blocks.length - 1], a = blocks[blocks.length - 2];
          if (a.sum / a.weight <= b.sum / b.weight) break;
          blocks.pop();
          a.sum += b.sum; a.weight += b.weight; a.count += b.count;
        }
      });
      let i = 0;
      for (const b of blocks) for (let k = 0; k < b.count; k++, i++) y.set(layer[i].id, b.sum / b.weight + offsets[i]);
    };
    const wantedFrom = (item, side) => {
      const ns = side === "ups" ? item.ups : side === "downs" ? item.downs : [...item.ups, ...item.downs];
      if (!ns.length) return y.get(item.id);
      return ns.reduce((s, n) => s + y.get(n.id) + n.other - n.dy, 0) / ns.length;
    };
    for (let round = 0; round < 8; round++) {
      const down = round % 2 === 0;
      const ls = [...Array(layerCount).keys()];
      for (const l of down ? ls : ls.reverse()) place(l, layers[l].map(item => wantedFrom(item, down ? "ups" : "downs")));
    }
    for (let l = 0; l < layerCount; l++) place(l, layers[l].map(item => wantedFrom(item, "both")));
    const top = Math.min(...[...y.values()]);
    let bottom = 0;
    for (const item of items.values()) {
      y.set(item.id, y.get(item.id) - top + margin);
      bottom = Math.max(bottom, y.get(item.id) + item.h);
    }

    const nodes = new Map();
    for (const item of items.values()) {
      if (item.real) nodes.set(item.id, {x: x[item.layer], y: y.get(item.id), w: item.w, h: item.h, layer: item.layer});
    }
    // routes: output port, through each virtual node (across its whole column), input port
    const routes = model.edges.map(e => {
      const a = nodes.get(e.from), b = nodes.get(e.to);
      const points = [[a.x + a.w + G.portR, a.y + sizes.get(e.from).outY[e.outputIndex]]];
      for (const id of chains.get(`${e.from}\u0000${e.to}`)) {
        const v = items.get(id);
        const colW = Math.max(0, ...layers[v.layer].map(item => item.w));
        points.push([x[v.layer], y.get(id)], [x[v.layer] + colW, y.get(id)]);
      }
      points.push([b.x - G.portR, b.y + sizes.get(e.to).inY[e.inputIndex]]);
      return points;
    });
    return {nodes, routes, width, height: bottom + margin, crossings: best};
  }

  // ---- nested graphs: an op named "outer.inner.op" is inside graph "outer.inner", inside "outer" ----
  const graphOf = name => name.slice(0, Math.max(0, name.lastIndexOf(".")));
  const graphDepth = path => path ? path.split(".").length : 0;
  const ancestors = path => path ? path.split(".").map((_, k, parts) => parts.slice(0, k + 1).join(".")) : [];

  // Keep the ops of one graph together in a column (where its first op is), so its box holds no
  // other op; ops of the job itself and edges' virtual nodes keep their order.
  function clusterByGraph(layer) {
    const first = new Map();
    layer.forEach((item, i) => {
      if (!item.real) return;
      for (const a of ancestors(graphOf(item.id))) if (!first.has(a)) first.set(a, i);
    });
    const key = (item, i) => [...(item.real ? ancestors(graphOf(item.id)) : []).map(a => first.get(a)), i];
    const keyed = layer.map((item, i) => ({item, key: key(item, i)}));
    keyed.sort((a, b) => {
      for (let k = 0; k < Math.min(a.key.length, b.key.length); k++) if (a.key[k] !== b.key[k]) return a.key[k] - b.key[k];
      return a.key.length - b.key.length;
    });
    keyed.forEach(({item}, i) => { layer[i] = item; });
  }

  // between two ops of different graphs: room for the box edges that pass between them
  function boxGap(upper, lower) {
    const a = ancestors(graphOf(upper)), b = ancestors(graphOf(lower));
    let common = 0;
    while (common < a.length && common < b.length && a[common] === b[common]) common++;
    return (a.length - common) * G.boxPad + (b.length - common) * (G.boxPad + G.boxLabel);
  }

  function gapAfter(layer, i) {
    if (i + 1 >= layer.length) return 0;
    if (!(layer[i].real && layer[i + 1].real)) return G.virtualGap;
    return G.nodeGap + boxGap(layer[i].id, layer[i + 1].id);
  }

  // a smooth path through the points, leaving and entering each one horizontally
  function pathOf(points) {
    let d = `M${points[0][0].toFixed(1)},${points[0][1].toFixed(1)}`;
    for (let i = 1; i < points.length; i++) {
      const [x0, y0] = points[i - 1], [x1, y1] = points[i];
      if (y0 === y1) { d += ` L${x1.toFixed(1)},${y1.toFixed(1)}`; continue; }
      const mid = (x1 - x0) / 2;
      d += ` C${(x0 + mid).toFixed(1)},${y0.toFixed(1)} ${(x1 - mid).toFixed(1)},${y1.toFixed(1)} ${x1.toFixed(1)},${y1.toFixed(1)}`;
    }
    return d;
  }

  // ---- drawing -------------------------------------------------------------------------------------
  // An input annotated `None` is how an op takes a Nothing output: it receives no value.
  const typeLabel = t => t === "NoneType" ? NOTHING : t || "Any";

  // Each node is drawn first with its texts, so their widths can be measured in one layout pass.
  // texts: [{node, kind: "title" | "alias" | "in" | "out", port}]
  function drawNode(op) {
    const mapped = op.inputs.some(i => i.mapped);  // runs once per mapping key: steps `name[key]`
    const g = svg("g", {"class": `op-node${mapped ? " mapped" : ""}`, "data-op": op.name, tabindex: "0", role: "button",
                        "aria-label": `op ${op.name}${mapped ? " (mapped)" : ""}`});
    const box = svg("rect", {"class": "op-box", rx: "5", ry: "5"});
    const lines = [svg("line", {"class": "op-sep", x1: 0, y1: G.headH, y2: G.headH})];
    const title = svg("text", {"class": "op-title", x: G.padX, y: 18}, mapped ? `${op.name}[…]` : op.name);
    const texts = [{node: title, kind: "title"}];
    g.append(box, lines[0], title);
    if (op.op && op.op !== op.name) {
      const alias = svg("text", {"class": "op-alias", y: 18, "text-anchor": "end"}, op.op);
      g.append(alias);
      texts.push({node: alias, kind: "alias"});
    }
    let rowY = G.headH + G.sectionPad;
    const inY = [], outY = [];
    for (const input of op.inputs) {
      const y = rowY + G.rowH / 2;
      inY.push(y);
      const text = svg("text", {"class": "port-label in", x: G.padX, y: y + 4},
                       `${input.name}: ${typeLabel(input.type)}${input.fan_in ? " [fan-in]" : ""}` +
                       `${input.collect ? " [collect]" : ""}`);
      const port = svg("circle", {"class": `port in${input.fan_in ? " fan-in" : ""}`, cx: 0, cy: y, r: G.portR});
      g.append(svg("g", {"class": "port-row in", "data-input": input.name}, port, text));
      texts.push({node: text, kind: "in", port});
      rowY += G.rowH;
    }
    if (op.inputs.length) {
      const between = rowY + G.sectionPad / 2;
      lines.push(svg("line", {"class": "op-sep", x1: 0, y1: between, y2: between}));
      g.append(lines[lines.length - 1]);
      rowY += G.sectionPad;
    }
    for (const output of op.outputs) {
      const y = rowY + G.rowH / 2;
      outY.push(y);
      const text = svg("text", {"class": "port-label out", y: y + 4, "text-anchor": "end"},
                       `${output.name}${output.is_required === false ? "?" : ""}: ${typeLabel(output.type)}` +
                       `${output.is_dynamic ? " [dynamic]" : ""}`);
      const port = svg("circle", {"class": `port out${output.type === NOTHING ? " nothing" : ""}` +
                                           `${output.is_dynamic ? " dynamic" : ""}`, cy: y, r: G.portR});
      g.append(svg("g", {"class": "port-row out", "data-output": output.name}, port, text));
      texts.push({node: text, kind: "out", port});
      rowY += G.rowH;
    }
    return {g, box, lines, texts, h: rowY + G.sectionPad, inY, outY};
  }

  // Once measured: the node's width (a text too long for G.maxW is cut, whole in its tooltip), and
  // everything placed against the right edge.
  function sizeNode(drawn) {
    const widths = drawn.texts.map(t => t.node.getComputedTextLength());
    const aliasW = drawn.texts.reduce((w, t, i) => t.kind === "alias" ? widths[i] + 14 : w, 0);
    const titleW = widths[0] + aliasW;
    const rowsW = Math.max(0, ...drawn.texts.map((t, i) => t.kind === "in" || t.kind === "out" ? widths[i] : 0));
    const w = Math.min(G.maxW, Math.max(G.minW, Math.ceil(Math.max(titleW, rowsW) + 2 * G.padX + 4)));
    drawn.texts.forEach((t, i) => {
      const room = w - 2 * G.padX - (t.kind === "title" ? aliasW : 0);
      if (widths[i] > room && t.kind !== "alias") {
        const full = t.node.textContent;
        t.node.textContent = full.slice(0, Math.max(1, Math.floor(full.length * room / widths[i]) - 1)) + "…";
        t.node.append(svg("title", {}, full));
      }
      if (t.kind === "out" || t.kind === "alias") t.node.setAttribute("x", w - G.padX);
      if (t.kind === "out") t.port.setAttribute("cx", w);
    });
    drawn.box.setAttribute("width", w);
    drawn.box.setAttribute("height", drawn.h);
    drawn.lines.forEach(line => line.setAttribute("x2", w));
    return {w, h: drawn.h, inY: drawn.inY, outY: drawn.outY};
  }

  // ---- nested graphs: a labelled box around each graph's ops (deepest drawn last, on top) -----------
  // `graphs` are the job snapshot's (path "outer.inner", name, description); a graph's ops are the
  // nodes named "<path>.<...>". Outer boxes get more padding, so nested boxes sit inside them.
  function drawGraphBoxes(graphs, placed) {
    // innermost first: a graph's box is around its own ops and the boxes of the graphs inside it
    const rects = new Map();
    const boxes = [];
    for (const g of [...graphs].sort((a, b) => graphDepth(b.path) - graphDepth(a.path))) {
      const members = [...placed.nodes].filter(([name]) => graphOf(name) === g.path).map(([, p]) => p)
        .concat([...rects].filter(([path]) => graphOf(path) === g.path).map(([, r]) => r));
      if (!members.length) continue;
      const x0 = Math.min(...members.map(p => p.x)) - G.boxPad;
      const y0 = Math.min(...members.map(p => p.y)) - G.boxPad - G.boxLabel;
      const x1 = Math.max(...members.map(p => p.x + p.w)) + G.boxPad;
      const y1 = Math.max(...members.map(p => p.y + p.h)) + G.boxPad;
      rects.set(g.path, {x: x0, y: y0, w: x1 - x0, h: y1 - y0});
      const local = g.path.slice(g.path.lastIndexOf(".") + 1);
      const text = local === g.name ? local : `${local} (${g.name})`;
      const box = svg("g", {"class": "graph-box", "data-graph": g.path, "data-depth": graphDepth(g.path)},
                      svg("rect", {"class": "graph-rect", x: x0.toFixed(1), y: y0.toFixed(1), rx: "8", ry: "8",
                                   width: (x1 - x0).toFixed(1), height: (y1 - y0).toFixed(1)}),
                      svg("text", {"class": "graph-label", x: (x0 + 8).toFixed(1), y: (y0 + 12).toFixed(1)}, text));
      box.append(svg("title", {}, [`graph ${g.path}`, g.description].filter(Boolean).join("\n")));
      boxes.push(box);
    }
    return boxes.reverse();  // outer boxes first, so inner ones are drawn over them
  }

  // ---- the page --------------------------------------------------------------------------------------
  function jobGraph(data) {
    const view = document.getElementById("op-graph");
    const root = document.getElementById("op-graph-svg");
    const model = buildModel(data.ops);
    const started = performance.now();

    // a marker does not take its edge's colour: one for plain edges, one for selected ones
    const arrow = (id, cls) => svg("marker", {id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
                                              markerHeight: "7", orient: "auto", "class": cls},
                                   svg("path", {d: "M0,1 L9,5 L0,9 z"}));
    const defs = svg("defs", {}, arrow("arrow", "arrow"), arrow("arrow-selected", "arrow selected"));
    const viewport = svg("g", {"class": "viewport"});
    const graphLayer = svg("g", {"class": "graphs"});
    const edgeLayer = svg("g", {"class": "edges"});
    const nodeLayer = svg("g", {"class": "nodes"});
    viewport.append(graphLayer, edgeLayer, nodeLayer);
    root.replaceChildren(defs, viewport);

    const drawn = new Map(data.ops.map(op => [op.name, drawNode(op)]));
    for (const d of drawn.values()) nodeLayer.append(d.g);
    const sizes = new Map([...drawn].map(([name, d]) => [name, sizeNode(d)]));
    const measured = performance.now();
    const placed = layout(model, sizes);
    const laidOut = performance.now();
    for (const [name, p] of placed.nodes) {
      const g = drawn.get(name).g;
      g.setAttribute("transform", `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`);
      Object.assign(g.dataset, {x: p.x.toFixed(1), y: p.y.toFixed(1), w: p.w, h: p.h, layer: p.layer});
    }
    const edgeEls = model.edges.map((e, i) => {
      const path = svg("path", {"class": `edge${e.nothing ? " nothing" : ""}${e.fanIn ? " fan-in" : ""}` +
                                         `${e.mapped ? " mapped" : ""}${e.collect ? " collect" : ""}`,
                                d: pathOf(placed.routes[i]), "marker-end": "url(#arrow)", "data-from": e.from,
                                "data-output": e.output, "data-to": e.to, "data-input": e.input});
      path.append(svg("title", {}, `${e.from}.${e.output} → ${e.to}.${e.input}${e.nothing ? " (orders steps only)" : ""}` +
                                   `${e.mapped ? " (mapped: one step per key)" : ""}${e.collect ? " (collected)" : ""}`));
      return path;
    });
    edgeLayer.append(...edgeEls);
    graphLayer.append(...drawGraphBoxes(data.graphs || [], placed));
    // for a look (and the tests' report): drawing and measuring the nodes, the layout alone, everything
    root.dataset.measureMs = (measured - started).toFixed(1);
    root.dataset.layoutMs = (laidOut - measured).toFixed(1);
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
    root.dataset.crossings = placed.crossings;
    root.setAttribute("aria-label", `op graph of ${data.job}: ${data.ops.length} ops, ${model.edges.length} edges`);

    // ---- zoom and pan: one transform on the viewport group ------------------------------------------
    const t = {k: 1, x: 0, y: 0};
    const apply = () => {
      viewport.setAttribute("transform", `translate(${t.x.toFixed(2)},${t.y.toFixed(2)}) scale(${t.k.toFixed(4)})`);
      root.dataset.zoom = t.k.toFixed(4);
    };
    const zoomAt = (factor, px, py) => {
      const k = Math.min(4, Math.max(0.03, t.k * factor));
      t.x = px - (px - t.x) * (k / t.k);
      t.y = py - (py - t.y) * (k / t.k);
      t.k = k;
      apply();
    };
    const fit = () => {
      const box = root.getBoundingClientRect();
      const k = Math.min(1.25, box.width / placed.width, box.height / placed.height);
      t.k = Math.max(0.03, k);
      t.x = (box.width - placed.width * t.k) / 2;
      t.y = (box.height - placed.height * t.k) / 2;
      apply();
    };
    const centerOn = name => {
      const p = placed.nodes.get(name);
      const box = root.getBoundingClientRect();
      t.x = box.width / 2 - (p.x + p.w / 2) * t.k;
      t.y = box.height / 2 - (p.y + p.h / 2) * t.k;
      apply();
    };
    const center = () => { const b = root.getBoundingClientRect(); return [b.width / 2, b.height / 2]; };
    root.addEventListener("wheel", ev => {
      ev.preventDefault();
      const box = root.getBoundingClientRect();
      const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
      zoomAt(Math.exp(-delta * 0.0015), ev.clientX - box.left, ev.clientY - box.top);
    }, {passive: false});
    let drag = null, dragged = false;
    root.addEventListener("pointerdown", ev => {
      if (ev.button !== 0) return;
      drag = {x: ev.clientX, y: ev.clientY, tx: t.x, ty: t.y, id: ev.pointerId};
      dragged = false;
    });
    root.addEventListener("pointermove", ev => {
      if (!drag || ev.pointerId !== drag.id) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!dragged && Math.hypot(dx, dy) < 4) return;
      if (!dragged) { dragged = true; root.setPointerCapture(ev.pointerId); view.classList.add("panning"); }
      t.x = drag.tx + dx;
      t.y = drag.ty + dy;
      apply();
    });
    const endDrag = () => { drag = null; view.classList.remove("panning"); };
    root.addEventListener("pointerup", endDrag);
    root.addEventListener("pointercancel", endDrag);
    document.getElementById("graph-fit").addEventListener("click", fit);
    document.getElementById("graph-zoom-in").addEventListener("click", () => zoomAt(1.25, ...center()));
    document.getElementById("graph-zoom-out").addEventListener("click", () => zoomAt(0.8, ...center()));
    view.addEventListener("keydown", ev => {
      if (ev.target !== view) return;
      const keys = {"+": () => zoomAt(1.25, ...center()), "=": () => zoomAt(1.25, ...center()),
                    "-": () => zoomAt(0.8, ...center()), "f": fit, "0": fit};
      if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
    });
    fit();

    const panel = opPanel(data, model, name => { centerOn(name); showOp(name); });
    const selection = opSelection(data, model, drawn, edgeEls);
    let active = null;
    function showOp(name) {
      if (active) drawn.get(active).g.classList.remove("active");
      active = name;
      if (name) drawn.get(name).g.classList.add("active");
      panel.show(name);
      if (!name) return;
      // the panel narrows the view: bring the op back into it when it ended up outside
      const area = root.getBoundingClientRect(), box = drawn.get(name).box.getBoundingClientRect();
      if (box.left < area.left || box.right > area.right || box.top < area.top || box.bottom > area.bottom) {
        centerOn(name);
      }
    }
    panel.onClose(() => showOp(null));
    nodeLayer.addEventListener("click", ev => {
      const node = ev.target.closest(".op-node");
      if (!node || dragged) return;
      const name = node.dataset.op;
      if (ev.shiftKey || ev.ctrlKey || ev.metaKey) selection.toggle(name); else selection.only(name);
      showOp(name);
    });
    nodeLayer.addEventListener("keydown", ev => {
      const node = ev.target.closest(".op-node");
      if (!node || (ev.key !== "Enter" && ev.key !== " ")) return;
      ev.preventDefault();
      if (ev.shiftKey || ev.ctrlKey || ev.metaKey) selection.toggle(node.dataset.op); else selection.only(node.dataset.op);
      showOp(node.dataset.op);
    });
    document.addEventListener("keydown", ev => { if (ev.key === "Escape" && active) showOp(null); });
  }

  // ---- the side panel: everything about one op ---------------------------------------------------------
  function opPanel(data, model, focus) {
    const panel = document.getElementById("op-panel");
    const body = document.getElementById("op-panel-body");
    let durations = null;  // a promise of Map(step key -> durations), asked for once
    const loadDurations = () => {
      durations = durations || gql(`query($loc: String!, $job: String!) { job(location: $loc, name: $job) {
          stepDurations(runs: 20) { stepKey runs p50 latest latestRunId latestStatus } } }`,
        {loc: data.location, job: data.job})
        .then(d => new Map((d.job ? d.job.stepDurations : []).map(s => [s.stepKey, s])));
      return durations;
    };
    let closeHandler = () => {};
    document.getElementById("op-panel-close").addEventListener("click", () => closeHandler());
    const opLink = (name, label) => {
      const a = el("a", {href: "#", "class": "op-link", "data-op": name}, label || name);
      a.addEventListener("click", ev => { ev.preventDefault(); focus(name); });
      return a;
    };
    const table = (heads, rows) => el("table", {"class": "compact"},
      el("thead", {}, el("tr", {}, ...heads.map(h => el("th", {}, h)))),
      el("tbody", {}, ...rows.map(r => el("tr", {}, ...r.map(c => el("td", {}, c))))));

    function show(name) {
      if (!name) { panel.hidden = true; return; }
      const op = model.byName.get(name);
      panel.hidden = false;
      panel.dataset.op = name;
      const parts = [el("h3", {}, op.name)];
      if (op.op && op.op !== op.name) parts.push(el("p", {"class": "muted"}, `runs op ${op.op}`));
      parts.push(op.description ? el("p", {"class": "op-description"}, op.description)
                                : el("p", {"class": "muted"}, "No description."));

      const durationBox = el("div", {"class": "op-durations", id: "op-durations"}, el("span", {"class": "muted"}, "Loading durations…"));
      parts.push(el("h4", {}, "Recent durations"), durationBox);
      loadDurations().then(found => {
        if (panel.dataset.op !== name) return;
        const d = found.get(name);
        if (!d) {
          durationBox.replaceChildren(el("span", {"class": "muted"}, "This step did not finish in the job's last 20 runs."));
          return;
        }
        durationBox.replaceChildren(el("dl", {"class": "facts"},
          el("dt", {}, "p50"), el("dd", {"data-p50": String(d.p50)}, `${duration(d.p50)} over ${d.runs} run${d.runs === 1 ? "" : "s"}`),
          el("dt", {}, "latest"), el("dd", {"data-latest": String(d.latest)}, `${duration(d.latest)} `,
            el("a", {href: `/runs/${d.latestRunId}`}, el("code", {}, d.latestRunId.slice(0, 8))), " ",
            el("span", {"class": `status status-${d.latestStatus.toLowerCase()}`}, d.latestStatus))));
      }).catch(e => durationBox.replaceChildren(el("span", {"class": "error"}, `Durations: ${e.message}`)));

      parts.push(el("h4", {}, "Inputs"));
      parts.push(op.inputs.length ? table(["input", "type", "from"], op.inputs.map(i => [
        el("code", {}, i.name),
        el("span", {}, typeLabel(i.type), i.fan_in ? el("span", {"class": "tag"}, "fan-in") : "",
           i.mapped ? el("span", {"class": "tag"}, "mapped") : "", i.collect ? el("span", {"class": "tag"}, "collect") : "",
           i.has_default ? el("span", {"class": "tag"}, "has default") : ""),
        el("span", {}, ...i.upstream.flatMap((u, k) => [k ? ", " : "", opLink(u.op, `${u.op}.${u.output}`)])),
      ])) : el("p", {"class": "muted"}, "No inputs."));
      parts.push(el("h4", {}, "Outputs"));
      parts.push(table(["output", "type", ""], op.outputs.map(o => [
        el("code", {}, o.name),
        el("span", {}, o.type === NOTHING ? el("span", {title: "orders steps only: no value is passed"}, `${NOTHING} (ordering only)`) : typeLabel(o.type),
           o.is_dynamic ? el("span", {"class": "tag"}, "dynamic") : "", o.is_required === false ? el("span", {"class": "tag"}, "optional") : ""),
        o.description || "",
      ])));

      parts.push(el("h4", {}, "Config"));
      const fields = configFields(op.config_schema);
      if (fields.length) {
        const config = table(["field", "type", "default", "required"], fields.map(f => [
          el("code", {title: f.description || ""}, f.path), f.type,
          f.hasDefault ? el("code", {}, JSON.stringify(f.default)) : "", f.required ? "required" : "",
        ]));
        config.id = "op-config-fields";
        parts.push(config);
      } else {
        parts.push(el("p", {"class": "muted"}, "No config."));
      }
      parts.push(el("h4", {}, "Resources"));
      parts.push(op.required_resources.length
        ? el("p", {}, ...op.required_resources.flatMap((r, k) => [k ? " " : "", el("span", {"class": "tag"}, r)]))
        : el("p", {"class": "muted"}, "None."));
      parts.push(el("h4", {}, "Retry policy"), el("p", {"class": "op-retry"}, retryText(op.retry_policy)));
      const hooks = op.hooks || [];  // absent from snapshots of ops without hooks
      parts.push(el("h4", {}, "Hooks"), hooks.length
        ? el("p", {"class": "op-hooks"}, ...hooks.flatMap((h, k) => [k ? " " : "", el("span", {
            "class": "tag", title: [h.description, h.required_resources.length ? `resources: ${h.required_resources.join(", ")}` : ""]
              .filter(Boolean).join("\n")}, `${h.name} (on ${h.kind})`)]))
        : el("p", {"class": "muted"}, "None."));
      const tags = Object.entries(op.tags || {});
      if (tags.length) {
        parts.push(el("h4", {}, "Tags"), el("p", {}, ...tags.map(([k, v]) => el("span", {"class": "tag"}, `${k}=${v}`))));
      }
      body.replaceChildren(...parts);
    }
    return {show, onClose: fn => { closeHandler = fn; }};
  }

  function retryText(policy) {
    if (!policy) return "None: a failure fails the step.";
    if (policy.max_retries == null) return `A custom policy (${policy.type}).`;
    const parts = [`up to ${policy.max_retries} retr${policy.max_retries === 1 ? "y" : "ies"}`];
    if (policy.delay != null) parts.push(`${policy.delay} s apart`);
    if (policy.backoff) parts.push(`${String(policy.backoff).toLowerCase()} backoff`);
    if (policy.jitter) parts.push(`${String(policy.jitter).toLowerCase()} jitter`);
    return parts.join(", ");
  }

  // The fields of an op's config schema (pydantic's JSON schema), nested models flattened to dotted
  // paths: {path, type, hasDefault, default, required, description}.
  function configFields(schema) {
    if (!schema || !schema.properties) return [];
    const defs = schema.$defs || schema.definitions || {};
    const deref = s => {
      let out = s || {};
      for (let i = 0; out.$ref && i < 10; i++) out = defs[out.$ref.split("/").pop()] || {};
      return out;
    };
    const typeOf = s => {
      if (!s) return "any";
      if (s.$ref) return s.$ref.split("/").pop();
      if (s.enum) return s.enum.map(v => JSON.stringify(v)).join(" | ");
      if (s.const !== undefined) return JSON.stringify(s.const);
      if (s.anyOf || s.oneOf) return (s.anyOf || s.oneOf).map(typeOf).join(" | ");
      if (s.allOf && s.allOf.length === 1) return typeOf(s.allOf[0]);
      if (s.type === "array") return `list[${typeOf(s.items)}]`;
      if (s.type === "object" && s.additionalProperties && typeof s.additionalProperties === "object") {
        return `dict[str, ${typeOf(s.additionalProperties)}]`;
      }
      return Array.isArray(s.type) ? s.type.join(" | ") : (s.type || "any");
    };
    const out = [];
    const walk = (s, prefix, depth) => {
      const required = new Set(s.required || []);
      for (const [name, prop] of Object.entries(s.properties || {})) {
        const path = prefix ? `${prefix}.${name}` : name;
        const hasDefault = Object.prototype.hasOwnProperty.call(prop, "default");
        out.push({path, type: typeOf(prop), hasDefault, default: prop.default, required: required.has(name),
                  description: prop.description});
        const inner = deref(prop.allOf && prop.allOf.length === 1 ? prop.allOf[0] : prop);
        if (inner.properties && depth < 4) walk(inner, path, depth + 1);
      }
    };
    walk(schema, "", 0);
    return out;
  }

  // ---- op selection: clicks and the selection syntax, evaluated by the server ---------------------------
  function opSelection(data, model, drawn, edgeEls) {
    const input = document.getElementById("op-selection");
    const form = document.getElementById("op-selection-form");
    const error = document.getElementById("op-selection-error");
    const problem = document.getElementById("op-selection-problem");
    const count = document.getElementById("op-selection-count");
    const launch = document.getElementById("launch-selected");
    const root = document.getElementById("op-graph-svg");
    let selected = new Set();

    const highlight = ops => {
      selected = new Set(ops);
      root.classList.toggle("has-selection", selected.size > 0);
      for (const [name, d] of drawn) d.g.classList.toggle("selected", selected.has(name));
      for (const path of edgeEls) {
        const on = selected.has(path.dataset.from) && selected.has(path.dataset.to);
        path.classList.toggle("selected", on);
        path.setAttribute("marker-end", on ? "url(#arrow-selected)" : "url(#arrow)");
      }
      root.dataset.selected = [...selected].join(",");
      count.textContent = selected.size ? `${selected.size} of ${model.ops.length} ops selected` : "";
    };
    const setLaunch = text => {
      if (!launch || runyard.forbidden(launch)) return;  // the role may not launch: no link, its title says why
      if (text) {
        launch.href = `${data.launchpad}?ops=${encodeURIComponent(text)}`;
        launch.removeAttribute("aria-disabled");
      } else {
        launch.removeAttribute("href");
        launch.setAttribute("aria-disabled", "true");
      }
    };
    const keepInUrl = text => {
      const url = new URL(window.location.href);
      if (text) url.searchParams.set("ops", text); else url.searchParams.delete("ops");
      window.history.replaceState(null, "", url);
    };
    const showError = message => {
      error.textContent = message || "";
      error.hidden = !message;
      input.setAttribute("aria-invalid", message ? "true" : "false");
    };
    const showProblem = message => { problem.textContent = message || ""; problem.hidden = !message; };

    async function evaluate(current) {
      const text = input.value.trim();
      keepInUrl(text);
      if (!text) {
        showError(null); showProblem(null); highlight([]); setLaunch(null);
        input.dataset.state = "empty";
        return;
      }
      input.dataset.state = "asking";
      try {
        const d = await gql(`query($loc: String!, $job: String!, $s: String!) { job(location: $loc, name: $job) {
            opSelection(selection: $s) { ops error launchProblem } } }`, {loc: data.location, job: data.job, s: text});
        if (!current()) return;  // a newer selection was typed meanwhile
        if (!d.job) throw new Error(`job ${data.job} is no longer in location ${data.location}`);
        const result = d.job.opSelection;
        if (result.error) {
          showError(result.error); showProblem(null); highlight([]); setLaunch(null);
          input.dataset.state = "invalid";
        } else {
          showError(null); showProblem(result.launchProblem); highlight(result.ops); setLaunch(text);
          input.dataset.state = "valid";
        }
      } catch (e) {
        if (!current()) return;
        showError(`Could not evaluate the selection: ${e.message}`);
        input.dataset.state = "invalid";
      }
    }
    const {soon, now} = latest(evaluate, 200);

    input.addEventListener("input", soon);
    form.addEventListener("submit", ev => { ev.preventDefault(); now(); });
    document.getElementById("clear-selection").addEventListener("click", () => { input.value = ""; now(); });
    if (input.value.trim()) now(); else setLaunch(null);

    // A click replaces the selection; shift/ctrl-click adds an op as one more clause, or removes a
    // selected one (the selection is then written out as the names that stay).
    return {
      only(name) {
        input.value = name;
        highlight([name]);
        now();
      },
      toggle(name) {
        const text = input.value.trim();
        if (selected.has(name)) {
          const rest = model.ops.map(op => op.name).filter(n => selected.has(n) && n !== name);
          input.value = rest.join(", ");
          highlight(rest);
        } else {
          input.value = text ? `${text}, ${name}` : name;
          highlight([...selected, name]);
        }
        now();
      },
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const source = document.getElementById("job-graph-data");
    if (source) jobGraph(JSON.parse(source.textContent));
  });
})();
