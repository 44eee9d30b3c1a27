"""The launchpad page in a real Chromium (Playwright, Debian's chromium) against a real ``runyard
webui`` and code server: problems appear as you type, before any launch, each on its line; Launch
stays disabled until they are fixed; completion inserts keys from the job's config schema; the tags
editor refuses reserved tags inline; launching opens the run page, which follows the run live to
SUCCESS; and the page prefilled from a run. Every state is saved with ``shot``."""

from __future__ import annotations

import re

from playwright.sync_api import expect

LAUNCHPAD = "/locations/defs_webui/jobs/ingest_csv/launchpad"

GOOD = """ops:
  read_csv:
    config:
      path: in.csv
      rows: many
resources:
  catalog:
    config:
      url: mem://catalog
"""


def open_launchpad(webui, page, query: str = ""):
    page.goto(webui.url + LAUNCHPAD + query)
    expect(page.locator("#validation-status")).not_to_have_attribute("data-state", "pending", timeout=15_000)
    return page.locator("#run-config")


def test_problems_appear_as_you_type_and_clear_when_fixed(webui, page, shot):
    editor = open_launchpad(webui, page)
    # the scaffold leaves the required fields null: said at once, on their lines, before any launch
    status, problems, launch = page.locator("#validation-status"), page.locator("#problems"), page.locator("#launch")
    expect(status).to_have_attribute("data-state", "invalid")
    expect(problems.locator("li[data-path='ops.read_csv.config.path']")).to_contain_text("line 4")
    expect(problems.locator("li[data-path='resources.catalog.config.url']")).to_contain_text("line 15")
    marker = page.locator("#gutter .ln.bad[data-line='4']")
    expect(marker).to_have_attribute("title", re.compile("ops.read_csv.config.path"))
    expect(page.locator("#highlight .y-problem").first).to_be_visible()
    expect(launch).to_be_disabled()
    shot(page, "scaffold-problems")

    editor.fill(GOOD)
    expect(problems.locator("li")).to_have_count(1)
    expect(problems.locator("li[data-path='ops.read_csv.config.rows']")).to_contain_text("valid integer")
    expect(page.locator("#gutter .ln.bad")).to_have_count(1)
    expect(page.locator("#gutter .ln.bad")).to_have_attribute("data-line", "5")
    # the caret on a line with a problem shows it under the editor
    editor.evaluate("(a) => { const i = a.value.indexOf('many'); a.focus(); a.setSelectionRange(i, i + 4); }")
    page.keyboard.press("Shift+ArrowLeft")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#cursor-problem")).to_contain_text("Line 5: ops.read_csv.config.rows")
    expect(launch).to_be_disabled()
    shot(page, "one-problem")

    # typing the fix (the selected "many" replaced key by key) clears it
    page.keyboard.type("12", delay=30)
    expect(status).to_have_attribute("data-state", "valid")
    expect(problems).to_be_hidden()
    expect(page.locator("#gutter .ln.bad")).to_have_count(0)
    expect(page.locator("#highlight .y-problem")).to_have_count(0)
    expect(launch).to_be_enabled()
    # highlighting: keys, strings, numbers
    expect(page.locator("#highlight .y-key", has_text="read_csv")).to_have_count(1)
    expect(page.locator("#highlight .y-number", has_text="12")).to_have_count(1)
    shot(page, "fixed")

    # a YAML syntax error is placed on its line too, and Launch goes disabled again
    editor.fill(GOOD.replace("      rows: many\n", "     rows: 3\n"))
    expect(status).to_have_attribute("data-state", "invalid")
    expect(problems).to_contain_text("not valid YAML at line 5")
    expect(page.locator("#gutter .ln.bad[data-line='5']")).to_be_visible()
    expect(launch).to_be_disabled()
    shot(page, "syntax-error")
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_completion_inserts_keys_from_the_config_schema_and_tab_indents(webui, page, shot):
    editor = open_launchpad(webui, page)
    editor.fill("")
    editor.focus()
    page.keyboard.press("Control+Space")
    popup = page.locator("#completions")
    expect(popup).to_be_visible()
    expect(popup.locator("li")).to_have_text([re.compile("^ops"), re.compile("^resources"),
                                              re.compile("^execution"), re.compile("^tags")])
    page.keyboard.press("Enter")  # ops
    page.keyboard.type("re", delay=30)
    expect(popup.locator("li")).to_have_count(1)
    expect(popup.locator("li")).to_contain_text("read_csv")
    page.keyboard.press("Tab")
    page.keyboard.type("c", delay=30)
    expect(popup.locator("li[data-key='config']")).to_be_visible()
    page.keyboard.press("Enter")
    page.keyboard.type("p", delay=30)
    expect(popup.locator("li[data-key='path']")).to_contain_text("required")
    shot(page, "completion")
    page.keyboard.press("Enter")
    page.keyboard.type("in.csv", delay=20)
    expect(editor).to_have_value("ops:\n  read_csv:\n    config:\n      path: in.csv")
    # keys already written are not offered again; fields of a nested model are
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    expect(popup.locator("li[data-key='path']")).to_have_count(0)
    expect(popup.locator("li[data-key='options']")).to_be_visible()
    page.keyboard.press("ArrowDown")  # rows, options
    page.keyboard.press("Enter")
    expect(editor).to_have_value(re.compile(r"      options:\n        $"))
    page.keyboard.type("d", delay=30)
    expect(popup.locator("li[data-key='delimiter']")).to_be_visible()
    page.keyboard.press("Escape")
    expect(popup).to_be_hidden()
    # Tab indents the line, Shift+Tab takes it back
    editor.fill("ops:\nread_csv: {}")
    editor.evaluate("(a) => { a.focus(); a.setSelectionRange(5, 5); }")
    page.keyboard.press("Tab")
    expect(editor).to_have_value("ops:\n  read_csv: {}")
    page.keyboard.press("Shift+Tab")
    expect(editor).to_have_value("ops:\nread_csv: {}")
    page.keyboard.press("Escape")


def test_tags_editor_refuses_reserved_tags_inline(webui, page, shot):
    editor = open_launchpad(webui, page)
    editor.fill(GOOD.replace("many", "3"))
    launch = page.locator("#launch")
    expect(launch).to_be_enabled()
    page.locator("#add-tag").click()
    row = page.locator("#tags-editor tbody tr").last
    row.locator(".tag-key").fill("runyard/tick")
    row.locator(".tag-value").fill("1")
    expect(row.locator(".tag-problem")).to_contain_text("'runyard/tick' is reserved")
    expect(launch).to_be_disabled()
    shot(page, "reserved-tag")
    row.locator(".tag-key").fill("runyard/priority")  # a reserved tag a user may set
    expect(row.locator(".tag-problem")).to_be_hidden()
    expect(launch).to_be_enabled()
    page.locator("#add-tag").click()
    second = page.locator("#tags-editor tbody tr").last
    second.locator(".tag-key").fill("runyard/priority")
    expect(second.locator(".tag-problem")).to_contain_text("given twice")
    expect(launch).to_be_disabled()
    second.locator(".remove-tag").click()
    expect(page.locator("#tags-editor tbody tr")).to_have_count(1)
    expect(launch).to_be_enabled()


def test_launch_then_watch_the_run_live_to_success(webui, page, shot):
    editor = open_launchpad(webui, page)
    editor.fill(GOOD.replace("many", "7"))
    page.locator("#ops").fill("read_csv*")
    expect(page.locator("#selected-steps")).to_contain_text("read_csv, total_rows")
    page.locator("#add-tag").click()
    page.locator("#tags-editor .tag-key").fill("team")
    page.locator("#tags-editor .tag-value").fill("web")
    launch = page.locator("#launch")
    expect(launch).to_be_enabled()
    shot(page, "ready")
    launch.click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"), timeout=30_000)
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=60_000)
    expect(page.locator("#events")).to_contain_text("read 7 rows of in.csv from mem://catalog")
    expect(page.locator("#events")).to_contain_text("total: 7")
    shot(page, "run-success")
    run = webui.gql("""query($id: ID!) { run(runId: $id) { runConfig tags { key value } } }""",
                    {"id": page.url.rsplit("/", 1)[1]})["run"]
    assert {"key": "team", "value": "web"} in run["tags"]
    assert run["runConfig"]["ops"]["read_csv"]["config"] == {"path": "in.csv", "rows": 7}


def test_prefilled_from_a_run_and_launched_again(webui, page, shot):
    parent = webui.gql("""mutation($cfg: String) { launchRun(location: "defs_webui", jobName: "ingest_csv",
        runConfigYaml: $cfg, ops: "read_csv", tags: [{key: "team", value: "data"}]) { ok run { runId } } }""",
                       {"cfg": GOOD.replace("many", "4")})["launchRun"]["run"]["runId"]
    webui.wait_finished(parent)
    editor = open_launchpad(webui, page, f"?from_run={parent}")
    expect(page.locator("#prefilled-from")).to_contain_text(parent[:8])
    expect(editor).to_have_value(re.compile(r"path: in\.csv\n      rows: 4\n"))
    expect(page.locator("#ops")).to_have_value("read_csv")
    expect(page.locator("#tags-editor .tag-key")).to_have_value("team")
    expect(page.locator("#tags-editor .tag-value")).to_have_value("data")
    expect(page.locator("#validation-status")).to_have_attribute("data-state", "valid")
    expect(page.locator("#selected-steps")).to_contain_text("1 step(s): read_csv")
    shot(page, "prefilled")
    editor.evaluate("(a) => { const i = a.value.indexOf('rows: 4') + 6; a.focus(); a.setSelectionRange(i, i + 1); }")
    page.keyboard.type("9")
    expect(page.locator("#launch")).to_be_enabled()
    page.locator("#launch").click()
    page.wait_for_url(re.compile(r"/runs/(?!" + parent + r")[0-9a-f]{32}$"), timeout=30_000)
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=60_000)
    expect(page.locator("#events")).to_contain_text("read 9 rows")
    shot(page, "relaunched")
