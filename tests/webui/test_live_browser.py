"""Live updates in a real browser (Debian's Chromium through Playwright): a step's log page opened
before the step starts shows the output as the step prints it, pushed by server-sent events."""

from __future__ import annotations

from playwright.sync_api import expect

from runyard import Instance
from runyard.testing import wait_until


def test_step_logs_opened_before_the_step_starts_show_the_output_arriving(webui, page, shot, tmp_path):
    gate = tmp_path / "gate"
    gate.write_text("")
    run_id = webui.launch("gated", {"ops": {"wait_for_gate": {"config": {"gate": str(gate)}}}})["run"]["runId"]
    inst = Instance.open(home=str(webui.home))
    try:  # the run is held at its first step: the printer step has not started
        wait_until(lambda: any(e.message == "waiting for the gate" for e in inst.storage.get_events(run_id)),
                   timeout=60, what="the run to reach its gate")
    finally:
        inst.dispose()
    page.goto(f"{webui.url}/runs/{run_id}/steps/printer/logs")
    expect(page.locator("#log-state")).to_have_text("waiting for the step to start…")
    expect(page.locator("#log-missing")).to_contain_text("printer")
    expect(page.locator("#log")).to_be_hidden()
    shot(page, "waiting")

    gate.unlink()  # the printer step starts and prints a line every 0.3 s
    expect(page.locator("#log")).to_contain_text("line 2", timeout=30_000)
    expect(page.locator("#log-state")).to_have_text("following…")
    expect(page.locator("#log-missing")).to_be_hidden()
    shot(page, "following")

    expect(page.locator("#log-state")).to_have_text("finished", timeout=30_000)
    text = page.locator("#log").inner_text()
    assert "line 1\nline 2\nline 3\nline 4\nline 5" in text and text.count("line 3") == 1  # each once, in order
    shot(page, "finished")
