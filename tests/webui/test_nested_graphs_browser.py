"""Nested graphs on the job page in a real browser (Debian's Chromium through Playwright) against a real
``runyard webui`` process: a labelled box around each nested graph's ops, each box holding its ops,
inner boxes inside outer ones, and clicking a nested op selects its dotted step key.

Needs: Chromium (/usr/bin/chromium or RUNYARD_TEST_CHROMIUM); the web UI fixtures (SQLite, a code server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DEFS = Path(__file__).with_name("defs_nested_graphs.py")


@pytest.fixture
def nested_webui(start_webui):
    return start_webui("-f", str(DEFS), defs=False)


def screen_box(locator) -> list[float]:
    return locator.evaluate("e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }")


def inside(inner: list[float], outer: list[float]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_each_nested_graph_is_a_labelled_box_around_its_ops(nested_webui, page, shot):
    page.goto(nested_webui.url + "/locations/defs_nested_graphs/jobs/nested_graphs")
    page.wait_for_selector("#op-graph-svg .graph-box")
    shot(page, "nested-graphs")
    boxes = page.locator("#op-graph-svg .graph-box")
    assert sorted(boxes.evaluate_all("els => els.map(e => e.dataset.graph)")) == [
        "outer", "outer.inner", "outer.inner_2", "outer.scaled"]
    labels = {g: page.locator(f"#op-graph-svg .graph-box[data-graph='{g}'] .graph-label").text_content()
              for g in ("outer", "outer.inner_2", "outer.scaled")}
    assert labels == {"outer": "outer", "outer.inner_2": "inner_2 (inner)", "outer.scaled": "scaled"}
    ops = page.locator("#op-graph-svg .op-node").evaluate_all("els => els.map(e => e.dataset.op)")
    for graph in ("outer", "outer.inner", "outer.inner_2", "outer.scaled"):
        rect = screen_box(page.locator(f"#op-graph-svg .graph-box[data-graph='{graph}'] rect"))
        members = [op for op in ops if op.startswith(graph + ".")]
        assert members
        for op in members:
            op_box = screen_box(page.locator(f"#op-graph-svg .op-node[data-op='{op}'] .op-box"))
            assert inside(op_box, rect), f"{op} is not inside the box of {graph}"
        if graph != "outer":
            assert inside(rect, screen_box(page.locator("#op-graph-svg .graph-box[data-graph='outer'] rect")))
    for graph in ("outer.inner", "outer.inner_2", "outer.scaled"):  # no box holds another graph's op
        rect = screen_box(page.locator(f"#op-graph-svg .graph-box[data-graph='{graph}'] rect"))
        for op in ops:
            if not op.startswith(graph + "."):
                op_box = screen_box(page.locator(f"#op-graph-svg .op-node[data-op='{op}'] .op-box"))
                assert not overlaps(op_box, rect), f"{op} overlaps the box of {graph}"
    for op in ("seed", "report"):  # the job's own ops are outside every box
        op_box = screen_box(page.locator(f"#op-graph-svg .op-node[data-op='{op}'] .op-box"))
        assert not inside(op_box, screen_box(page.locator("#op-graph-svg .graph-box[data-graph='outer'] rect")))
    page.locator("#op-graph-svg .op-node[data-op='outer.scaled.add']").click()
    page.wait_for_function("() => document.getElementById('op-selection').value === 'outer.scaled.add'")


def test_launchpad_completion_walks_nested_graphs(nested_webui, page, shot):
    from playwright.sync_api import expect

    page.goto(nested_webui.url + "/locations/defs_nested_graphs/jobs/nested_graphs/launchpad")
    expect(page.locator("#validation-status")).not_to_have_attribute("data-state", "pending", timeout=15_000)
    editor = page.locator("#run-config")
    editor.fill("")
    editor.focus()
    page.keyboard.press("Control+Space")
    popup = page.locator("#completions")
    page.keyboard.press("Enter")  # ops
    page.keyboard.press("Control+Space")
    # the job's own level: its ops and the graph "outer"
    expect(popup.locator("li")).to_have_count(3)
    expect(popup.locator("li[data-key='outer']")).to_contain_text("graph")
    page.keyboard.type("ou", delay=30)
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    expect(popup.locator("li")).to_have_text([re.compile("^ops")])
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    expect(popup.locator("li[data-key='scaled']")).to_contain_text("config mapping")
    expect(popup.locator("li[data-key='inner_2']")).to_be_visible()
    page.keyboard.type("sc", delay=30)
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    expect(popup.locator("li")).to_have_text([re.compile("^config")])
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    expect(popup.locator("li[data-key='factor']")).to_be_visible()
    shot(page, "nested-completion")
    page.keyboard.press("Enter")
    page.keyboard.type("4", delay=20)
    expect(editor).to_have_value("ops:\n  outer:\n    ops:\n      scaled:\n        config:\n          factor: 4")
    expect(page.locator("#validation-status")).to_have_attribute("data-state", "valid", timeout=15_000)
