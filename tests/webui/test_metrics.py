"""The web UI's ``/metrics``, scraped from a real ``runyard webui`` process and parsed with
``prometheus_client``'s own parser: runs by status after real runs, a queued run's queue depth and
age, events written, the daemons' heartbeats and leadership (a real leader and a real standby
daemon beside it); the same Host check and authentication as the pages; ``webui.metrics_enabled``.

Needs: SQLite; PostgreSQL server binaries (initdb, pg_ctl) for the outage test's private server,
which it stops; the web UI, its code server, run workers and the daemons are real processes.
"""

from __future__ import annotations

import base64
import os
import signal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runyard.testing import wait_until
from runyard_storage_postgres.testing import PostgresUnavailable, PrivateServer

DEFS = Path(__file__).with_name("defs_webui.py")
QUEUED = "run_coordinator:\n  queued: {dequeue_interval_seconds: 0.2}\n"
DAEMON = "daemon: {heartbeat_interval_seconds: 0.5, lease_seconds: 2}\n"


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample: (sample name, its labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(ui) -> dict[tuple[str, frozenset], float]:
    status, text = ui.get("/metrics")
    assert status == 200, text
    return parse(text)


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def labelled(samples: dict, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name]


@pytest.fixture
def daemons(cli):
    """``daemons()`` starts a real ``runyard daemon`` on the web UI's definitions; all are stopped at
    the test's end."""
    started = []

    def start():
        proc = cli.popen("daemon", "-f", str(DEFS), start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_runs_by_status_and_events_after_real_runs(webui):
    first = scrape(webui)
    assert value(first, "runyard_storage_up") == 1
    assert {d["status"] for d in labelled(first, "runyard_runs")} == {
        "NOT_STARTED", "QUEUED", "STARTING", "STARTED", "CANCELING", "SUCCESS", "FAILURE", "CANCELED"}
    assert value(first, "runyard_runs", status="SUCCESS") == 0
    assert value(first, "runyard_queue_depth") == 0 and value(first, "runyard_queue_oldest_age_seconds") == 0
    assert value(first, "runyard_daemons", state="leader") == 0  # no daemon runs
    assert value(first, "process_resident_memory_bytes") > 0  # the web UI process's own

    ok = webui.launch("hello")
    status, events = webui.wait_finished(ok["run"]["runId"])
    assert status == "SUCCESS"
    bad = webui.launch("broken")
    status, more = webui.wait_finished(bad["run"]["runId"])
    assert status == "FAILURE"
    events += more

    samples = wait_until(lambda: (s := scrape(webui)) and value(s, "runyard_runs", status="FAILURE") == 1 and s,
                         timeout=10, what="a scrape past the one-second read cache")
    assert value(samples, "runyard_runs", status="SUCCESS") == 1
    assert value(samples, "runyard_runs", status="FAILURE") == 1
    assert sum(v for (n, _), v in samples.items() if n == "runyard_runs") == 2
    # the two runs wrote every event there is: ids 1..N, so the highest id is their number
    assert value(samples, "runyard_events_written") == max(int(e["id"]) for e in events) == len(events)


def test_queue_depth_and_daemons_leader_and_standby(start_webui, instance_file, daemons):
    instance_file(QUEUED + DAEMON)
    ui = start_webui()
    queued = ui.launch("hello")
    assert queued["run"]["status"] == "QUEUED"  # no daemon yet: it waits
    samples = wait_until(lambda: (s := scrape(ui)) and value(s, "runyard_queue_depth") == 1 and s, timeout=10,
                         what="the queued run in the metrics")
    assert value(samples, "runyard_runs", status="QUEUED") == 1
    assert value(samples, "runyard_queue_oldest_age_seconds") >= 0

    daemons()
    assert ui.wait_finished(queued["run"]["runId"])[0] == "SUCCESS"  # the daemon dequeued and launched it

    def loops_of(samples):
        return {d["loop"] for d in labelled(samples, "runyard_daemon_heartbeat_age_seconds")}

    # each loop heartbeats after its first pass: the sensors loop's comes a second after start
    leader = wait_until(lambda: (s := scrape(ui)) and {"lease", "queue", "schedules", "sensors"} <= loops_of(s)
                        and s, timeout=30, what="the daemon's heartbeats")
    assert value(leader, "runyard_queue_depth") == 0
    (leader_id,) = labelled(leader, "runyard_daemon_is_leader")
    assert value(leader, "runyard_daemon_is_leader", **leader_id) == 1
    assert value(leader, "runyard_daemons", state="leader") == 1
    assert all(v >= 0 for (n, _), v in leader.items() if n == "runyard_daemon_heartbeat_age_seconds")

    daemons()
    both = wait_until(lambda: (s := scrape(ui)) and len(labelled(s, "runyard_daemon_is_leader")) == 2 and s,
                      timeout=30, what="the standby's heartbeat")
    standby = next(d for d in labelled(both, "runyard_daemon_is_leader") if d != leader_id)
    assert value(both, "runyard_daemon_is_leader", **standby) == 0
    assert value(both, "runyard_daemon_is_leader", **leader_id) == 1
    assert value(both, "runyard_daemons", state="standby") == 1
    assert value(both, "runyard_daemon_heartbeat_age_seconds", loop="lease", **standby) >= 0


def test_metrics_pass_the_host_check_and_authentication(start_webui, instance_file):
    instance_file("webui:\n  auth:\n    username: ops\n    password: s3cret\n")
    ui = start_webui()
    status, _ = ui.get("/metrics")
    assert status == 401  # the runs list's numbers are not for anyone who can reach the port
    assert ui.get("/healthz")[0] == 200  # while up-or-down stays open to probes
    ui.auth = ("ops", "s3cret")
    assert value(scrape(ui), "runyard_storage_up") == 1
    status, text = ui.request("/metrics", headers={"Host": "attacker.example"})
    assert status == 421 and "webui.allowed_hosts" in text
    wrong = "Basic " + base64.b64encode(b"ops:wrong").decode()
    ui.auth = None
    assert ui.request("/metrics", headers={"Authorization": wrong})[0] == 401


def test_metrics_can_be_turned_off(start_webui, instance_file):
    instance_file("webui:\n  metrics_enabled: false\n")
    ui = start_webui()
    assert ui.get("/metrics")[0] == 404
    assert ui.get("/healthz")[0] == 200


def test_a_bad_metrics_enabled_value_names_the_key(cli, instance_file):
    instance_file("webui:\n  metrics_enabled: perhaps\n")
    proc = cli("webui", "--port", "0")
    assert proc.returncode != 0
    assert "webui.metrics_enabled" in proc.stderr and "line 2" in proc.stderr, proc.stderr


def test_storage_down_says_storage_up_0_and_the_scrape_still_answers(start_webui, instance_file):
    try:
        server = PrivateServer().init().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        url = server.create_database("metrics_outage")
        instance_file("storage:\n  postgres:\n    url: {env: RY_METRICS_PG_URL}\n")
        ui = start_webui(env={"RY_METRICS_PG_URL": url})
        assert value(scrape(ui), "runyard_storage_up") == 1
        server.stop("fast")
        try:
            down = wait_until(lambda: (s := scrape(ui)) and value(s, "runyard_storage_up") == 0 and s, timeout=30,
                              what="a scrape that could not read storage")
            assert value(down, "runyard_runs", status="SUCCESS") is None  # left out, not reported as 0
            assert value(down, "process_resident_memory_bytes") > 0
        finally:
            server.start()
        up = wait_until(lambda: (s := scrape(ui)) and value(s, "runyard_storage_up") == 1 and s, timeout=30,
                        what="the storage series to come back")
        assert value(up, "runyard_runs", status="SUCCESS") == 0
    finally:
        server.destroy()
