"""The pages in a real browser: Debian's Chromium driven by Playwright (``executable_path``, since
``playwright install`` cannot download browsers here). Launching from the launchpad, watching a run
live, terminating it, seeing config errors, and the run list refreshing itself. Toggling a schedule
(on its page and in the list, kept after a reload) is test_automation_browser.py's."""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect


def test_graphiql_works_offline_under_the_content_security_policy(webui, browser, csp_violations):
    """GraphiQL loads everything from the web UI itself: with every request to another host refused,
    its editor renders, runs a query against the API and shows the answer, with no CSP violation."""
    context = browser.new_context()
    outside: list[str] = []

    def only_local(route) -> None:
        if route.request.url.startswith(webui.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    pg = context.new_page()
    messages, errors = [], []
    pg.on("console", lambda msg: messages.append(msg))
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        pg.goto(webui.url + "/graphql")
        pg.wait_for_selector(".graphiql-editor", timeout=30_000)
        editor = pg.locator(".graphiql-query-editor .CodeMirror").first
        editor.evaluate("(el) => el.CodeMirror.setValue('{ runs(limit: 1) { runId } }')")
        pg.locator(".graphiql-execute-button").click()
        pg.wait_for_function("() => document.querySelector('.graphiql-response')"
                             "&& document.querySelector('.graphiql-response').innerText.includes('runs')",
                             timeout=30_000)
    finally:
        context.close()
    assert outside == [], f"GraphiQL asked for something beyond the web UI: {outside}"
    assert errors == [] and csp_violations(messages) == [], (errors, [m.text for m in messages])


def test_launch_from_the_launchpad_and_watch_the_run_live(webui, page):
    page.goto(webui.url + "/jobs")
    page.get_by_role("link", name="hello").click()
    expect(page.locator("h1")).to_contain_text("hello")
    page.get_by_role("link", name="Open the launchpad").click()  # the launchpad is a page of its own
    config = page.locator("#run-config")
    expect(config).to_have_value(re.compile(r"name: world"))
    config.fill("ops:\n  greet:\n    config:\n      name: browser\n      times: 1\n")
    page.locator("#add-tag").click()
    page.locator("#tags-editor .tag-key").fill("team")
    page.locator("#tags-editor .tag-value").fill("web")
    page.get_by_role("button", name="Launch run").click()  # waits until validation enables it
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"), timeout=30_000)
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=30_000)
    expect(page.locator("#events")).to_contain_text("RUN_SUCCESS")
    expect(page.locator("#events")).to_contain_text("hello browser")
    expect(page.locator("#steps tr[data-step='shout'] [data-status]")).to_have_text("SUCCESS")
    expect(page.locator("#terminate")).to_be_hidden()
    run_id = page.url.rsplit("/", 1)[1]
    tags = webui.gql("""query($id: ID!) { run(runId: $id) { tags { key value } } }""", {"id": run_id})["run"]["tags"]
    assert {"key": "team", "value": "web"} in tags


def test_invalid_config_shows_each_problem_and_stores_nothing(webui, page):
    # problems show before any launch (validation as you type), and Launch stays disabled
    page.goto(webui.url + "/locations/defs_webui/jobs/hello/launchpad")
    page.locator("#run-config").fill("ops:\n  greet:\n    config:\n      times: lots\n      nmae: x\n")
    errors = page.locator("#problems")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("ops.greet.config.times")
    expect(errors).to_contain_text("ops.greet.config.nmae")
    expect(page.get_by_role("button", name="Launch run")).to_be_disabled()
    page.locator("#run-config").fill("ops: [broken")
    expect(errors).to_contain_text("not valid YAML")
    expect(page.get_by_role("button", name="Launch run")).to_be_disabled()
    assert "/runs/" not in page.url
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_terminate_button_cancels_a_running_run(webui, page):
    run_id = webui.launch("sleepy")["run"]["runId"]
    page.goto(f"{webui.url}/runs/{run_id}")
    expect(page.locator("#events")).to_contain_text("napping", timeout=30_000)
    page.get_by_role("button", name="Terminate").click()
    page.locator("#terminate-dialog").get_by_role("button", name="Terminate run").click()  # the confirmation
    expect(page.locator("#run h1 [data-status]")).to_have_text("CANCELED", timeout=30_000)
    expect(page.locator("#terminate")).to_be_hidden()
    expect(page.locator("#events")).to_contain_text("RUN_CANCELED")


def test_failed_run_shows_its_error(webui, page):
    run_id = webui.launch("broken")["run"]["runId"]
    page.goto(f"{webui.url}/runs/{run_id}")
    expect(page.locator("#run h1 [data-status]")).to_have_text("FAILURE", timeout=30_000)
    expect(page.locator("#steps tr[data-step='explode']")).to_contain_text("the op exploded on purpose")
    expect(page.locator("#events")).to_contain_text("raise ValueError")


def test_run_list_shows_new_runs_without_a_reload(webui, page):
    page.goto(webui.url + "/runs")
    expect(page.locator("#runs")).to_contain_text("No runs yet")
    run_id = webui.launch("hello")["run"]["runId"]
    expect(page.locator(f"#runs tr[data-run-id='{run_id}']")).to_be_visible(timeout=15_000)
    expect(page.locator(f"#runs tr[data-run-id='{run_id}'] [data-status]")).to_have_text("SUCCESS",
                                                                                          timeout=30_000)


def test_reexecute_from_failure_button(webui, page, tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("fail")
    parent = webui.launch("pipeline", {"ops": {"check": {"config": {"fail_marker": str(marker)}}}})["run"]["runId"]
    page.goto(f"{webui.url}/runs/{parent}")
    expect(page.locator("#run h1 [data-status]")).to_have_text("FAILURE", timeout=30_000)
    expect(page.get_by_role("button", name="Re-execute all")).to_be_visible()
    marker.unlink()
    page.get_by_role("button", name="Re-execute from failure").click()
    page.wait_for_url(re.compile(r"/runs/(?!" + parent + r")[0-9a-f]{32}$"), timeout=30_000)
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=30_000)
    expect(page.locator("#run")).to_contain_text(parent[:8])  # links back to its parent
    expect(page.locator("#steps tr[data-step='check'] [data-status]")).to_have_text("SUCCESS")
    expect(page.locator("#steps tr[data-step='make']")).to_have_count(0)
    expect(page.get_by_role("button", name="Re-execute from failure")).to_be_hidden()


def test_a_steps_captured_output_from_the_run_page(webui, page):
    run_id = webui.launch("hello", {"ops": {"greet": {"config": {"name": "chromium"}}}})["run"]["runId"]
    webui.wait_finished(run_id)
    page.goto(f"{webui.url}/runs/{run_id}")
    page.locator("#steps tr[data-step='shout']").get_by_role("link", name="stdout").click()
    expect(page.locator("#log")).to_contain_text("SHOUTING HELLO CHROMIUM")
    expect(page.locator("#log-state")).to_have_text("finished")
    page.get_by_role("link", name="stderr").click()
    expect(page.locator("#log")).not_to_contain_text("SHOUTING")


def test_a_running_steps_output_is_followed_live(webui, page):
    run_id = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 4}}}})["run"]["runId"]
    page.goto(f"{webui.url}/runs/{run_id}")
    expect(page.locator("#events")).to_contain_text("napping", timeout=30_000)
    page.goto(f"{webui.url}/runs/{run_id}/steps/nap/logs")
    expect(page.locator("#log-state")).to_have_text("following…")
    served = page.locator("#log").inner_text()
    expect(page.locator("#log")).to_contain_text("tick 14", timeout=30_000)  # printed after the page loaded
    assert "tick 14" not in served
    expect(page.locator("#log-state")).to_have_text("finished", timeout=30_000)


def test_a_run_whose_worker_dies_shows_why_live(webui, page, cli):
    """The failure line appears without a reload: the health check (`runyard run health`, another
    process) marks the run FAILURE with the launcher's reason, and the page's long poll shows it."""
    import signal

    from runyard import Instance
    from runyard.testing import wait_until

    run_id = webui.launch("sleepy")["run"]["runId"]
    page.goto(f"{webui.url}/runs/{run_id}")
    expect(page.locator("#events")).to_contain_text("napping", timeout=30_000)
    expect(page.locator("#run-failure")).to_be_hidden()
    inst = Instance.open(home=str(webui.home))
    try:
        pid = inst.get_run(run_id).launcher_info["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: cli.json("run", "health", run_id, "--json")[run_id] == "dead", timeout=15,
                   what=f"the health check to find worker {pid} dead")
    finally:
        inst.dispose()
    expect(page.locator("#run h1 [data-status]")).to_have_text("FAILURE", timeout=30_000)
    failure = page.locator("#run-failure")
    expect(failure).to_be_visible()
    expect(failure.locator("[data-failure-reason]")).to_contain_text(f"process {pid}")
    expect(failure.locator("[data-failure-message]")).to_contain_text("Run worker died")
