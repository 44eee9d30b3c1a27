"""The job page's op graph in a real browser (Debian's Chromium through Playwright) against a real
``runyard webui`` process: a node per op and an edge per dependency, the side panel of an op, op
selection by typing and by clicking, zoom and pan, and a 200-op job laid out without overlap.
Screenshots of every state land in test-results/screenshots/ (the ``shot`` fixture).

Needs: Chromium (/usr/bin/chromium or RUNYARD_TEST_CHROMIUM); the web UI fixtures (SQLite, a code server)."""

from __future__ import annotations

import re
from collections import Counter

from playwright.sync_api import expect

JOB_URL = "/locations/defs_webui/jobs/{job}"
CONFIG = {"ops": {"ingest": {"config": {"source": "browser"}}}}


def open_graph(page, webui, job: str = "op_graph", query: str = "") -> None:
    page.goto(webui.url + JOB_URL.format(job=job) + query)
    page.wait_for_selector("#op-graph-svg .op-node")


def node(page, name: str):
    return page.locator(f"#op-graph-svg .op-node[data-op='{name}']")


def expected_edges(page) -> Counter:
    """(from, output, to, input) of every dependency, from the data the page was given."""
    ops = page.evaluate("() => JSON.parse(document.getElementById('job-graph-data').textContent).ops")
    return Counter((u["op"], u["output"], op["name"], i["name"]) for op in ops for i in op["inputs"]
                   for u in i["upstream"])


def drawn_edges(page) -> Counter:
    return Counter(tuple(e) for e in page.evaluate("""() => [...document.querySelectorAll('#op-graph-svg path.edge')]
        .map(p => [p.dataset.from, p.dataset.output, p.dataset.to, p.dataset.input])"""))


def boxes(page) -> dict[str, dict]:
    """Each node's laid-out box (data attributes) and its box as drawn on screen."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#op-graph-svg .op-node')].map(g => {
        const r = g.querySelector('.op-box').getBoundingClientRect();
        return [g.dataset.op, {x: +g.dataset.x, y: +g.dataset.y, w: +g.dataset.w, h: +g.dataset.h,
                               layer: +g.dataset.layer, screen: [r.left, r.top, r.width, r.height]}];
    }))""")


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def transform(page) -> tuple[float, float, float]:
    text = page.locator("#op-graph-svg g.viewport").get_attribute("transform")
    x, y, k = map(float, re.fullmatch(r"translate\(([-\d.]+),([-\d.]+)\) scale\(([-\d.]+)\)", text).groups())
    return x, y, k


def selected(page) -> set[str]:
    return set(page.locator("#op-graph-svg .op-node.selected").evaluate_all("els => els.map(e => e.dataset.op)"))


def test_graph_draws_a_node_per_op_and_an_edge_per_dependency(webui, page, shot):
    open_graph(page, webui)
    shot(page, "graph")
    names = {"ingest", "split_rows", "prepare_tables", "store_rows", "audit_rows", "count_rows", "recount_rows"}
    assert set(page.locator("#op-graph-svg .op-node").evaluate_all("els => els.map(e => e.dataset.op)")) == names
    assert page.locator("#op-graph-svg .op-node").count() == len(names)
    assert drawn_edges(page) == expected_edges(page)
    # fan-in: one input, an edge from each source
    fan_in = page.locator("#op-graph-svg path.edge[data-to='audit_rows'][data-input='parts']")
    assert sorted(fan_in.evaluate_all("els => els.map(e => e.dataset.output)")) == ["evens", "odds"]
    assert fan_in.evaluate_all("els => els.every(e => e.classList.contains('fan-in'))")
    # an output that only orders steps is drawn dashed; value edges are not
    nothing = page.locator("#op-graph-svg path.edge[data-from='prepare_tables']")
    assert nothing.evaluate("e => getComputedStyle(e).strokeDasharray") not in ("none", "")
    value = page.locator("#op-graph-svg path.edge[data-from='ingest']")
    assert value.evaluate("e => getComputedStyle(e).strokeDasharray") == "none"
    # nodes show their inputs and outputs with types
    expect(node(page, "split_rows")).to_contain_text("rows: list[int]")
    expect(node(page, "split_rows")).to_contain_text("evens: list")
    expect(node(page, "split_rows")).to_contain_text("odds: list")
    expect(node(page, "audit_rows")).to_contain_text("parts: list [fan-in]")
    expect(node(page, "prepare_tables")).to_contain_text("result: Nothing")
    expect(node(page, "recount_rows")).to_contain_text("count_rows")  # the op an aliased node runs
    # layers flow left to right along every edge
    b = boxes(page)
    for src, _, dst, _ in expected_edges(page):
        assert b[src]["layer"] < b[dst]["layer"] and b[src]["x"] + b[src]["w"] < b[dst]["x"], (src, dst)


def test_clicking_an_op_shows_its_config_schema_resources_retry_policy_and_durations(webui, page, shot):
    run_ids = []
    for _ in range(2):
        launched = webui.launch("op_graph", CONFIG)
        assert launched["ok"], launched
        run_ids.append(launched["run"]["runId"])
        assert webui.wait_finished(run_ids[-1])[0] == "SUCCESS"
    expected = {d["stepKey"]: d for d in webui.gql("""{ job(location: "defs_webui", name: "op_graph") {
        stepDurations { stepKey p50 latest latestRunId } } }""")["job"]["stepDurations"]}
    open_graph(page, webui)
    panel = page.locator("#op-panel")
    expect(panel).to_be_hidden()
    node(page, "ingest").click()
    expect(panel).to_be_visible()
    expect(panel.locator("h3")).to_have_text("ingest")
    expect(panel).to_contain_text("Reads rows from the configured source.")
    fields = panel.locator("#op-config-fields tbody tr")
    rows = fields.evaluate_all("trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")
    assert ["source", "string", "", "required"] in rows
    assert ["limit", "integer", "100", ""] in rows
    assert ["window.days", "integer", "3", ""] in rows
    assert ["window.until", "string | null", "null", ""] in rows
    expect(panel.locator(".op-retry")).to_have_text("up to 2 retries, 0.5 s apart, exponential backoff")
    expect(panel).to_contain_text("kind=io")
    durations = panel.locator("#op-durations")
    expect(durations).to_contain_text("over 2 runs")
    assert float(durations.locator("[data-p50]").get_attribute("data-p50")) == expected["ingest"]["p50"]
    assert float(durations.locator("[data-latest]").get_attribute("data-latest")) == expected["ingest"]["latest"]
    expect(durations.locator("a")).to_have_attribute("href", f"/runs/{run_ids[-1]}")
    shot(page, "panel-ingest")

    node(page, "store_rows").click()
    expect(panel.locator("h3")).to_have_text("store_rows")
    expect(panel).to_contain_text("warehouse")
    expect(panel.locator(".op-hooks")).to_have_text("note_stored (on success) warn_warehouse (on failure)")
    expect(panel).to_contain_text("No config.")
    expect(panel).to_contain_text("None: a failure fails the step.")
    inputs = panel.locator("table").first.locator("tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")
    assert inputs == [["evens", "list", "split_rows.evens"], ["odds", "list", "split_rows.odds"],
                      ["ready", "Nothing", "prepare_tables.result"]]
    shot(page, "panel-store_rows")
    # an upstream link opens that op; Escape closes the panel
    panel.get_by_role("link", name="prepare_tables.result").click()
    expect(panel.locator("h3")).to_have_text("prepare_tables")
    expect(panel).to_contain_text("Nothing (ordering only)")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()


def test_typing_a_selection_highlights_the_ops_the_server_selects(webui, page, shot):
    open_graph(page, webui)
    field = page.locator("#op-selection")
    cases = {"*store_rows": {"ingest", "split_rows", "prepare_tables", "store_rows"},
             "split_rows+": {"split_rows", "store_rows", "audit_rows"},
             "*count_*, prepare_tables": {"count_rows", "recount_rows", "prepare_tables"}}
    for text, ops in cases.items():
        answer = webui.gql("""query($s: String!) { job(location: "defs_webui", name: "op_graph") {
            opSelection(selection: $s) { ops } } }""", {"s": text})["job"]["opSelection"]["ops"]
        assert set(answer) == ops  # what the page must show is what the server selects
        field.fill(text)
        expect(field).to_have_attribute("data-state", "valid")
        page.wait_for_function("(want) => document.getElementById('op-graph-svg').dataset.selected"
                               ".split(',').sort().join(',') === want", arg=",".join(sorted(ops)))
        assert selected(page) == ops
        expect(page.locator("#op-selection-count")).to_have_text(f"{len(ops)} of 7 ops selected")
        expect(page.locator("#launch-selected")).to_have_attribute(
            "href", re.compile(re.escape("/locations/defs_webui/jobs/op_graph/launchpad?ops=")))
    shot(page, "selection-typed")
    # the page keeps the selection in its URL
    assert "ops=" in page.url
    # a bad selection: the server's message inline, nothing highlighted, no launch
    field.fill("split_rows, nope+")
    expect(page.locator("#op-selection-error")).to_be_visible()
    expect(page.locator("#op-selection-error")).to_contain_text("no op named 'nope'")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert selected(page) == set()
    expect(page.locator("#launch-selected")).to_have_attribute("aria-disabled", "true")
    shot(page, "selection-error")
    # a selection that cannot launch alone says why, and still highlights
    field.fill("store_rows")
    expect(page.locator("#op-selection-problem")).to_contain_text("needs output 'evens' of op 'split_rows'")
    expect(page.locator("#op-selection-error")).to_be_hidden()
    assert selected(page) == {"store_rows"}
    shot(page, "selection-problem")


def test_clicking_ops_builds_a_selection_that_opens_the_launchpad(webui, page, shot):
    open_graph(page, webui, query="?ops=*store_rows")
    field = page.locator("#op-selection")
    expect(field).to_have_value("*store_rows")
    page.wait_for_function("() => document.querySelectorAll('#op-graph-svg .op-node.selected').length === 4")
    node(page, "audit_rows").click()
    expect(field).to_have_value("audit_rows")
    expect(field).to_have_attribute("data-state", "valid")
    assert selected(page) == {"audit_rows"}
    node(page, "ingest").click(modifiers=["Shift"])
    expect(field).to_have_value("audit_rows, ingest")
    node(page, "split_rows").click(modifiers=["Control"])
    expect(field).to_have_value("audit_rows, ingest, split_rows")
    expect(field).to_have_attribute("data-state", "valid")
    assert selected(page) == {"audit_rows", "ingest", "split_rows"}
    shot(page, "selection-clicked")
    # a modifier-click on a selected op takes it out
    node(page, "audit_rows").click(modifiers=["Shift"])
    expect(field).to_have_value("ingest, split_rows")
    page.wait_for_function("() => document.getElementById('op-graph-svg').dataset.selected === 'ingest,split_rows'")
    assert selected(page) == {"ingest", "split_rows"}
    link = page.locator("#launch-selected")
    expect(link).to_have_attribute("href", "/locations/defs_webui/jobs/op_graph/launchpad?ops=ingest%2C%20split_rows")
    page.locator("#clear-selection").click()
    expect(field).to_have_value("")
    assert selected(page) == set()
    expect(link).to_have_attribute("aria-disabled", "true")
    # the link opens the launchpad with the selection
    node(page, "ingest").click()
    node(page, "split_rows").click(modifiers=["Shift"])
    expect(link).to_have_attribute("href", re.compile(r"ops=ingest%2C%20split_rows$"))
    link.click()
    page.wait_for_url(re.compile(r"/locations/defs_webui/jobs/op_graph/launchpad\?ops="))
    expect(page.locator("#ops")).to_have_value("ingest, split_rows")
    shot(page, "launchpad-from-selection")


def test_zoom_and_pan_change_the_view_transform_and_fit_brings_it_back(webui, page, shot):
    open_graph(page, webui)
    fitted = transform(page)
    box = page.locator("#op-graph-svg").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function("(k) => +document.getElementById('op-graph-svg').dataset.zoom > k", arg=fitted[2])
    zoomed = transform(page)
    assert zoomed[2] > fitted[2]
    # zooming keeps the point under the cursor where it was
    gx, gy = (cx - box["x"] - fitted[0]) / fitted[2], (cy - box["y"] - fitted[1]) / fitted[2]
    assert abs(gx * zoomed[2] + zoomed[0] - (cx - box["x"])) < 1
    assert abs(gy * zoomed[2] + zoomed[1] - (cy - box["y"])) < 1
    shot(page, "zoomed")
    # drag the background: the view moves with the pointer
    start = (box["x"] + 8, box["y"] + box["height"] - 8)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 60, start[1] - 40, steps=5)
    page.mouse.up()
    panned = transform(page)
    assert (round(panned[0] - zoomed[0]), round(panned[1] - zoomed[1]), panned[2]) == (60, -40, zoomed[2])
    assert page.locator("#op-panel").is_hidden()  # a drag is not a click
    shot(page, "panned")
    page.locator("#graph-zoom-out").click()
    assert transform(page)[2] < panned[2]
    page.locator("#graph-fit").click()
    assert transform(page) == fitted


def test_a_200_op_job_is_laid_out_without_overlapping_nodes(webui, page, shot):
    open_graph(page, webui, job="wide_graph")
    assert page.locator("#op-graph-svg .op-node").count() == 200
    assert drawn_edges(page) == expected_edges(page)
    b = boxes(page)
    names = sorted(b)
    for i, a in enumerate(names):
        for c in names[i + 1:]:
            laid_a = (b[a]["x"], b[a]["y"], b[a]["w"], b[a]["h"])
            laid_c = (b[c]["x"], b[c]["y"], b[c]["w"], b[c]["h"])
            assert not overlaps(laid_a, laid_c), (a, c, laid_a, laid_c)
            assert not overlaps(b[a]["screen"], b[c]["screen"]), (a, c)
    # a layer is a column; edges go from a column to one further right
    for box in b.values():
        assert {o["x"] for o in b.values() if o["layer"] == box["layer"]} == {box["x"]}
    for src, _, dst, _ in expected_edges(page):
        assert b[src]["x"] + b[src]["w"] < b[dst]["x"], (src, dst)
    svg = page.locator("#op-graph-svg")
    print(f"\n200 ops: drawn and measured in {svg.get_attribute('data-measure-ms')} ms, laid out in "
          f"{svg.get_attribute('data-layout-ms')} ms, rendered in {svg.get_attribute('data-render-ms')} ms; "
          f"{svg.get_attribute('data-crossings')} crossings")
    shot(page, "wide-fitted")
    node(page, "wide_150").click()
    expect(page.locator("#op-panel h3")).to_have_text("wide_150")
    page.locator("#op-selection").fill("*wide_150")
    page.wait_for_function("() => document.querySelectorAll('#op-graph-svg .op-node.selected').length > 1")
    shot(page, "wide-selection")
