"""Roles and the audit log in a real browser (issue 15, items 2 and 4): each page offers a user only
what the user's role allows (the rest disabled, titled with the role it needs), the nav names who is
signed in, an editor turns a schedule on where a launcher cannot, and an admin reads the audit log:
the entries other users' actions made, filtered through the page and its URL, paged, expanded.
Screenshots of each state go to test-results/screenshots/ (the ``shot`` fixture).

Debian's Chromium through Playwright (basic auth through its ``http_credentials``), a real
``runyard webui`` over SQLite with defs_webui.py's code server. Runs and extra audit entries are
written into the same storage by this process.
Needs: /usr/bin/chromium (or RUNYARD_TEST_CHROMIUM)."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator

from automation_support import browser_page
from playwright.sync_api import expect

from runyard.instance.instance import Instance
from runyard.storage.records import AuditEntry, RunRecord, RunStatus
from runyard.tags import LOCATION_TAG

#: user -> (role, password); sam is a launcher limited to defs_webui's code location
USERS = {"vera": ("viewer", "vera-pw-1"), "lars": ("launcher", "lars-pw-1"), "edda": ("editor", "edda-pw-1"),
         "ada": ("admin", "ada-pw-1")}
LOCATION = "defs_webui"
HELLO_CONFIG = {"ops": {"greet": {"config": {"name": "audit"}}}}
TURN_ON = 'mutation { startSchedule(name: "nightly_hello") { ok } }'


def _auth_ui(start_webui, instance_file):
    users = "".join(f"      - {{username: {name}, password: {pw}, role: {role}}}\n"
                    for name, (role, pw) in USERS.items())
    users += f"      - {{username: sam, password: sam-pw-1, role: launcher, locations: [{LOCATION}]}}\n"
    instance_file(f"webui:\n  auth:\n    users:\n{users}")
    ui = start_webui()
    as_user(ui, "ada")
    return ui


def as_user(ui, name: str):
    """``ui.gql`` and ``ui.get`` speak as ``name`` from now on."""
    ui.auth = (name, USERS[name][1] if name in USERS else f"{name}-pw-1")
    return ui


@contextlib.contextmanager
def signed_in(browser, name: str) -> Iterator:
    """A page in a new browser context that signs in as ``name``; JavaScript errors and
    Content-Security-Policy violations fail the test, as the ``page`` fixture's do."""
    password = USERS[name][1] if name in USERS else f"{name}-pw-1"
    with browser_page(browser, http_credentials={"username": name, "password": password}) as pg:
        yield pg


def _seed_runs(ui) -> tuple[str, str]:
    """A STARTED and a SUCCESS run of hello in defs_webui (records only: no worker runs them)."""
    inst = Instance.open(home=str(ui.home))
    ids = []
    try:
        now = time.time()
        for status in (RunStatus.STARTED, RunStatus.SUCCESS):
            run_id = str(uuid.uuid4())
            inst.storage.add_run(RunRecord(run_id=run_id, job_name="hello", status=status,
                                           tags={LOCATION_TAG: LOCATION}, created_at=now - 60, start_time=now - 50,
                                           end_time=now - 40 if status == RunStatus.SUCCESS else None))
            ids.append(run_id)
    finally:
        inst.dispose()
    return ids[0], ids[1]


def _needs(locator, role: str) -> None:
    """The control is there, disabled, and its title names ``role``."""
    expect(locator).to_be_visible()
    expect(locator).to_be_disabled()
    expect(locator).to_have_attribute("data-needs", role)
    expect(locator).to_have_attribute("title", re.compile(rf"Needs the {role} role"))


def test_a_viewer_is_offered_nothing_its_role_does_not_allow(start_webui, instance_file, browser, shot):
    ui = _auth_ui(start_webui, instance_file)
    started, finished = _seed_runs(ui)
    with signed_in(browser, "vera") as page:
        page.goto(ui.url + "/runs")
        expect(page.locator("#whoami")).to_have_text(re.compile(r"^\s*vera · viewer\s*$"))
        expect(page.locator("#nav-audit")).to_have_count(0)
        page.locator(f"#runs tr[data-run-id='{finished}'] [data-select]").check()
        expect(page.locator("#selected-count")).to_have_text("1 selected")
        _needs(page.locator("[data-bulk=terminate]"), "launcher")
        _needs(page.locator("[data-bulk=reexecute]"), "launcher")
        _needs(page.locator("[data-bulk=delete]"), "editor")
        shot(page, "runs")

        page.goto(f"{ui.url}/runs/{started}")
        _needs(page.locator("#terminate"), "launcher")
        page.goto(f"{ui.url}/runs/{finished}")
        _needs(page.locator("[data-reexecute=all]"), "launcher")
        expect(page.locator("[data-select-step]")).to_have_count(0)  # no step selection: a click focuses
        edit = page.locator("#edit-config")
        expect(edit).to_have_attribute("aria-disabled", "true")
        assert edit.get_attribute("href") is None
        shot(page, "run")

        page.goto(f"{ui.url}/locations/{LOCATION}/jobs/hello/launchpad")
        page.locator("#run-config").fill("ops:\n  greet:\n    config:\n      name: vera\n")
        expect(page.locator("#validation-status")).to_have_attribute("data-state", "valid")
        _needs(page.locator("#launch"), "launcher")  # a valid config, still not launchable
        expect(page.locator("#launch-refused")).to_contain_text("Needs the launcher role")
        shot(page, "launchpad")

        page.goto(ui.url + "/automation")
        row = page.locator("tr[data-instigator='nightly_hello']")
        _needs(row.locator("[data-toggle]"), "editor")
        _needs(row.locator("[data-dry-run]"), "launcher")
        # an editor turns it on elsewhere: the live list follows, the button still says what it would do
        assert as_user(ui, "edda").gql(TURN_ON)["startSchedule"]["ok"]
        expect(row.locator("[data-status]")).to_have_text("RUNNING", timeout=20_000)
        expect(row.locator("[data-toggle]")).to_have_text("Turn off")
        _needs(row.locator("[data-toggle]"), "editor")
        page.goto(ui.url + "/jobs")
        _needs(page.locator(f"[data-reload='{LOCATION}']"), "editor")
        shot(page, "jobs")

        response = page.goto(ui.url + "/audit")
        assert response.status == 403
        expect(page.locator("#error-message")).to_contain_text("admin")
        shot(page, "audit-refused")
    with signed_in(browser, "ada") as page:
        page.goto(ui.url + "/audit?actor=vera")
        expect(page.locator("#audit tbody tr.empty")).to_be_visible()  # greyed-out controls asked nothing


def test_an_editor_turns_a_schedule_on_where_a_launcher_may_only_dry_run(start_webui, instance_file, browser, shot):
    ui = _auth_ui(start_webui, instance_file)
    with signed_in(browser, "lars") as page:
        page.goto(ui.url + "/automation")
        expect(page.locator("#whoami")).to_have_text(re.compile(r"lars · launcher"))
        row = page.locator("tr[data-instigator='nightly_hello']")
        _needs(row.locator("[data-toggle]"), "editor")
        row.locator("[data-dry-run]").click()
        expect(page.locator("tr[data-dry-run-for='nightly_hello'] [data-dry-run-outcome='runs']")).to_have_text(
            "It would launch 1 run:")
        shot(page, "launcher")
    with signed_in(browser, "sam") as page:
        page.goto(ui.url + "/automation")
        expect(page.locator("#whoami")).to_contain_text(f"sam · launcher ({LOCATION})")
    with signed_in(browser, "edda") as page:
        page.goto(ui.url + "/automation")
        expect(page.locator("#whoami")).to_have_text(re.compile(r"edda · editor"))
        expect(page.locator("#nav-audit")).to_have_count(0)
        row = page.locator("tr[data-instigator='nightly_hello']")
        expect(row.locator("[data-toggle]")).to_be_enabled()
        row.get_by_role("button", name="Turn on").click()
        expect(row.locator("[data-status]")).to_have_text("RUNNING")
        page.reload()
        expect(page.locator("tr[data-instigator='nightly_hello'] [data-status]")).to_have_text("RUNNING")
        shot(page, "editor")
        page.goto(ui.url + "/jobs")
        expect(page.locator(f"[data-reload='{LOCATION}']")).to_be_enabled()
    assert ui.gql("{ schedules { status } }")["schedules"] == [{"status": "RUNNING"}]


def _seed_audit(ui, n: int) -> None:
    """``n`` old entries of a CI token reloading the location: enough for a second page."""
    inst = Instance.open(home=str(ui.home))
    try:
        base = time.time() - 86_400
        for i in range(n):
            inst.storage.add_audit_entry(AuditEntry(action="reloadLocation", actor="token:ci", via="token",
                                                    role="editor", result="ok", timestamp=base + i, target=LOCATION,
                                                    location=LOCATION, remote_addr="127.0.0.1"))
    finally:
        inst.dispose()


def _rows(page) -> list[tuple[str, str]]:
    """(actor, result) of each entry shown, top to bottom."""
    return [tuple(r) for r in page.locator("#audit tbody tr[data-entry-id]").evaluate_all(
        "rows => rows.map(r => [r.querySelector('[data-filter-actor]').textContent, r.dataset.result])")]


def _times_match(page) -> None:
    """Every time on the page reads as app.js's runyard.when draws it (the server's `when` filter)."""
    mismatched = page.locator("#audit time[data-ts]").evaluate_all(
        "ts => ts.filter(t => t.textContent !== runyard.when(Number(t.dataset.ts))).map(t => t.outerHTML)")
    assert mismatched == []


def test_an_admin_reads_filters_and_pages_the_audit_log(start_webui, instance_file, browser, shot):
    ui = _auth_ui(start_webui, instance_file)
    _seed_audit(ui, 55)
    launch = """mutation($cfg: GenericScalar) { launchRun(location: "defs_webui", jobName: "hello", runConfig: $cfg) {
        ok code message run { runId } } }"""
    assert as_user(ui, "edda").gql(TURN_ON)["startSchedule"]["ok"]
    refused = as_user(ui, "vera").gql(launch, {"cfg": HELLO_CONFIG})["launchRun"]
    assert (refused["ok"], refused["code"]) == (False, "FORBIDDEN")
    failed = as_user(ui, "lars").gql(launch, {"cfg": {"ops": {"greet": {"config": {"name": 3}}}}})["launchRun"]
    assert not failed["ok"] and failed["code"] != "FORBIDDEN"
    run_id = as_user(ui, "lars").gql(launch, {"cfg": HELLO_CONFIG})["launchRun"]["run"]["runId"]
    as_user(ui, "ada").wait_finished(run_id)

    with signed_in(browser, "ada") as page:
        page.goto(ui.url + "/runs")
        expect(page.locator("#whoami")).to_have_text(re.compile(r"ada · admin"))
        page.locator("#nav-audit").click()
        page.wait_for_url(re.compile(r"/audit$"))
        rows = page.locator("#audit tbody tr[data-entry-id]")
        expect(rows).to_have_count(50)
        # newest first: the four actions above, then the seeded ones
        assert _rows(page)[:5] == [("lars", "ok"), ("lars", "failed"), ("vera", "refused"), ("edda", "ok"),
                                   ("token:ci", "ok")]
        newest = rows.first
        expect(newest).to_contain_text("launchRun")
        newest.locator("summary").click()
        expect(newest.locator("[data-entry-details] dl")).to_be_visible()
        expect(newest.locator("[data-entry-details]")).to_contain_text(run_id)
        _times_match(page)
        shot(page, "newest")

        # the link itself opens the older page (a new tab, no JavaScript)...
        older = page.locator("#audit-older").get_attribute("href")
        assert re.fullmatch(r"/audit\?before=\d+", older)
        page.goto(ui.url + older)
        expect(rows).to_have_count(9)
        expect(page.locator("#audit-older")).to_have_count(0)
        expect(page.locator("#audit-newest")).to_be_visible()
        page.locator("#audit-newest").click()
        page.wait_for_url(re.compile(r"/audit$"))
        expect(rows).to_have_count(50)
        # ...and a click adds it under the newest page, read through GraphQL, drawn like the server's rows
        page.locator("#audit-older").click()
        expect(rows).to_have_count(59)
        expect(page.locator("#audit-older")).to_have_count(0)
        assert page.url.endswith("/audit")
        oldest = rows.last
        expect(oldest).to_contain_text("reloadLocation")
        oldest.locator("summary").click()
        expect(oldest.locator("[data-entry-details]")).to_contain_text("127.0.0.1")
        _times_match(page)
        shot(page, "all-pages")

        # filters: typed in the form, chosen in the select, clicked in a row; all of them in the URL
        page.locator("#audit-filters input[name=actor]").fill("vera")
        page.locator("#apply-audit-filters").click()
        page.wait_for_url(re.compile(r"/audit\?actor=vera$"))
        assert _rows(page) == [("vera", "refused")]
        vera = rows.first
        expect(vera).to_contain_text("FORBIDDEN")
        vera.locator("summary").click()
        expect(vera.locator("[data-entry-details]")).to_contain_text("launcher")
        shot(page, "refused")

        page.locator("#clear-audit-filters").click()
        page.locator("#audit-filters select[name=result]").select_option("failed")
        page.wait_for_url(re.compile(r"/audit\?result=failed$"))
        assert _rows(page) == [("lars", "failed")]

        page.goto(ui.url + "/audit")
        page.locator("#audit tbody tr[data-entry-id] [data-filter-actor]", has_text="edda").click()
        page.wait_for_url(re.compile(r"/audit\?actor=edda$"))
        assert _rows(page) == [("edda", "ok")]
        expect(rows.first).to_contain_text("startSchedule")
        expect(rows.first).to_contain_text("nightly_hello")
        page.locator("#audit tbody [data-filter-result]").first.click()
        page.wait_for_url(re.compile(r"actor=edda&result=ok$"))
        assert _rows(page) == [("edda", "ok")]
        shot(page, "filtered")

        # a filter nothing matches, and a bad one
        page.goto(ui.url + "/audit?actor=nobody")
        expect(page.locator("#audit tbody tr.empty")).to_have_text("No entry matches these filters.")
        response = page.goto(ui.url + "/audit?result=maybe")
        assert response.status == 400
        expect(page.locator("#error-message")).to_contain_text("ok, refused, failed")
        response = page.goto(ui.url + "/audit?before=latest")
        assert response.status == 400
        expect(page.locator("#error-message")).to_contain_text("audit entry id")


def test_without_auth_the_nav_names_nobody_and_the_audit_log_shows_anonymous(webui, page, shot):
    run_id = webui.launch("hello", HELLO_CONFIG)["run"]["runId"]
    webui.wait_finished(run_id)
    page.goto(webui.url + "/runs")
    expect(page.locator("#whoami")).to_have_count(0)
    page.locator("#nav-audit").click()
    row = page.locator("#audit tbody tr[data-entry-id]").first
    expect(row.locator("[data-filter-actor]")).to_have_text("anonymous")
    expect(row).to_contain_text("via none")
    expect(row).to_contain_text("launchRun")
    _times_match(page)
    shot(page, "audit")
