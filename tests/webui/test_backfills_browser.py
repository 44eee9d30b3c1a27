"""Backfills in a real Chromium (Playwright, Debian's chromium) against a real ``runyard webui``, a
real ``runyard daemon`` and their code servers (docs/backfills.md): launching a backfill from a
partitioned job's page, its page following the progress to every run SUCCESS; a backfill held by a
tag limit of the queue canceled from its page (its queued runs canceled) and its partitions retried;
the /backfills list with progress bars and its launch form; and GraphQL's backfill queries and
mutations with their refusals. Every state is saved with ``shot``.

Needs: nothing beyond the dev venv and Chromium; daemon, web UI, code servers and run workers are
real processes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

DEFS = Path(__file__).with_name("defs_partitions.py")

#: regions' runs carry the tag `region` (their partitioned config's tags): a limit of 0 holds them
#: in the queue, where cancel finds them; days' runs have no such tag and run at once
INSTANCE = """
run_coordinator:
  queued:
    max_concurrent_runs: 4
    dequeue_interval_seconds: 0.2
    tag_concurrency_limits:
      - {key: region, limit: 0}
run_launcher: {process: {warm: false}}
daemon: {backfill_interval_seconds: 0.2, heartbeat_interval_seconds: 1}
"""


@pytest.fixture
def ui(start_webui, instance_file, cli, procs):
    instance_file(INSTANCE)
    daemon = procs.add(cli.popen("daemon", "-f", str(DEFS), start_new_session=True))
    try:
        yield start_webui("-f", str(DEFS), defs=False)
    finally:
        procs.stop(daemon)


def test_launch_watch_cancel_and_retry_a_backfill(ui, page, shot):
    page.goto(ui.url + "/locations/defs_partitions/jobs/days")
    form = page.locator("#backfill-launch")
    expect(form).to_be_visible()
    shot(page, "job-page")
    form.locator("input[value=range]").check()
    page.fill("#backfill-from", "2024-01-03")
    page.fill("#backfill-to", "2024-01-07")
    page.click("#launch-backfill")
    page.wait_for_url(re.compile(r"/backfills/[0-9a-f]+$"), timeout=30_000)
    section = page.locator("#backfill")
    expect(section.locator("tr[data-partition-key]")).to_have_count(5)
    # the daemon queues the five runs, the queue launches them: the page follows them to SUCCESS
    expect(page.locator("#backfill-status [data-status]")).to_have_text("COMPLETED", timeout=30_000)
    expect(section.locator("[data-counts]")).to_contain_text("5 SUCCESS", timeout=90_000)
    fifth = section.locator("tr[data-partition-key='2024-01-05']")
    expect(fifth.locator("[data-run-status] [data-status]")).to_have_text("SUCCESS")
    expect(fifth.locator("[data-run] a")).to_have_attribute(
        "href", re.compile(r"^/runs/[0-9a-f]{32}$"))
    width = section.locator("[data-bar] .status-success").evaluate("(s) => s.getBoundingClientRect().width")
    assert width > 50, width
    shot(page, "completed")

    # regions' runs are held by the tag limit: cancel cancels them
    page.goto(ui.url + "/locations/defs_partitions/jobs/regions")
    page.locator("#partition-grid .partition-cell[data-partition-key=us]").click()
    page.locator("#partition-grid .partition-cell[data-partition-key=eu]").click(modifiers=["Control"])
    page.click("#launch-backfill")
    page.wait_for_url(re.compile(r"/backfills/[0-9a-f]+$"), timeout=30_000)
    held_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#backfill [data-counts]")).to_contain_text("2 QUEUED", timeout=30_000)
    expect(page.locator("tr[data-partition-key]")).to_have_count(2)
    shot(page, "queued")
    page.click("#cancel-backfill")
    expect(page.locator("#backfill-status [data-status]")).to_have_text("CANCELED", timeout=15_000)
    expect(page.locator("#backfill [data-counts]")).to_contain_text("2 CANCELED", timeout=15_000)
    expect(page.locator("#cancel-backfill")).to_be_hidden()
    shot(page, "canceled")
    page.click("#retry-backfill")
    page.wait_for_url(lambda url: re.search(r"/backfills/[0-9a-f]+$", url) and not url.endswith(held_id),
                      timeout=30_000)
    expect(page.locator("tr[data-partition-key]")).to_have_count(2)
    expect(page.locator("#backfill")).to_contain_text(held_id)  # retry of
    shot(page, "retry")

    # the list: every backfill with its progress; a launch from its form with a bad key is refused
    page.goto(ui.url + "/backfills")
    expect(page.locator("tr[data-backfill-id]")).to_have_count(3)
    expect(page.locator(f"tr[data-backfill-id='{held_id}'] [data-status]")).to_have_text("CANCELED")
    page.select_option("#backfill-job", "defs_partitions/regions")
    page.locator("#backfill-launch input[value=keys]").check()
    page.fill("#backfill-keys", "eu,pluto")
    page.click("#launch-backfill")
    expect(page.locator("#backfill-errors")).to_contain_text("job 'regions' has no partition 'pluto'")
    shot(page, "list")


def test_backfills_over_graphql(ui):
    launched = ui.gql('mutation { launchBackfill(location: "defs_partitions", jobName: "regions", '
                      'partitionKeys: ["asia"], tags: [{key: "team", value: "data"}]) '
                      '{ ok code message backfill { backfillId status numPartitions partitionKeys '
                      'tags { key value } } } }')["launchBackfill"]
    assert launched["ok"], launched
    bf = launched["backfill"]
    assert bf["numPartitions"] == 1 and bf["partitionKeys"] == ["asia"]
    assert {"key": "team", "value": "data"} in bf["tags"]
    query = ('query($id: ID!) { backfill(backfillId: $id) { status submitted progress { total submitted '
             'statusCounts { status count } } partitions { key status runId } } }')
    from runyard.testing import wait_until

    got = wait_until(lambda: (b := ui.gql(query, {"id": bf["backfillId"]})["backfill"])["submitted"] == 1 and b, 30,
                     what="the daemon to queue the run")
    assert got["status"] == "COMPLETED" and got["progress"]["statusCounts"] == [{"status": "QUEUED", "count": 1}]
    assert got["partitions"][0]["key"] == "asia" and got["partitions"][0]["status"] == "QUEUED"
    listed = ui.gql('{ backfills(status: ["COMPLETED"]) { backfills { backfillId } cursor } }')["backfills"]
    assert [b["backfillId"] for b in listed["backfills"]] == [bf["backfillId"]]
    refusals = {
        'launchBackfill(location: "defs_partitions", jobName: "plain", allPartitions: true)': "not partitioned",
        'launchBackfill(location: "defs_partitions", jobName: "regions")': "one way",
        'launchBackfill(location: "defs_partitions", jobName: "regions", fromKey: "mars", toKey: "eu")': "comes after",
        'launchBackfill(location: "defs_partitions", jobName: "regions", allPartitions: true, '
        'tags: [{key: "runyard/backfill", value: "x"}])': "reserved tag",
        'cancelBackfill(backfillId: "nope")': "no backfill with id 'nope'",
        f'retryBackfill(backfillId: "{bf["backfillId"]}")': "no failed or canceled partition",
    }
    for call, message in refusals.items():
        answer = next(iter(ui.gql(f"mutation {{ {call} {{ ok code message }} }}").values()))
        assert answer["ok"] is False and message in answer["message"], (call, answer)
    assert ui.gql('{ backfill(backfillId: "nope") { backfillId } }')["backfill"] is None
    canceled = ui.gql(f'mutation {{ cancelBackfill(backfillId: "{bf["backfillId"]}") {{ ok backfill {{ status }} }} }}')
    assert canceled["cancelBackfill"] == {"ok": True, "backfill": {"status": "CANCELED"}}
