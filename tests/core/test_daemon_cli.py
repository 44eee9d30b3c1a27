"""The daemon's commands as a user runs them: ``runyard schedule|sensor list|start|stop|preview``,
``runyard daemon`` + ``runyard daemon status``, two daemons on one SQLite file (the second stands
by and takes over after kill -9), and ``runyard dev`` leaving no process behind after Ctrl-C.

Needs: nothing beyond Python, SQLite and Linux's /proc; every daemon is a real process.
"""

from __future__ import annotations

import os
import signal

import pytest

from runyard.testing import descendants, pid_gone

DEFS = """
from runyard import Config, Definitions, RunRequest, SkipReason, job, op, schedule, sensor


class NCfg(Config):
    n: int


@op
def show(config: NCfg) -> None:
    pass


@job
def shown():
    show()


@schedule("0 9 * * *", job=shown, execution_timezone="Europe/Paris")
def morning(context):
    return {"ops": {"show": {"config": {"n": context.scheduled_time.hour}}}}


@sensor(job=shown, minimum_interval_seconds=5)
def watcher(context):
    context.update_cursor("seen")
    return RunRequest(run_key="only-once", run_config={"ops": {"show": {"config": {"n": 1}}}})


defs = Definitions(jobs=[shown], schedules=[morning], sensors=[watcher])
"""


@pytest.fixture
def defs(write_defs):
    return write_defs(DEFS)


def test_schedule_commands(cli, defs):
    (row,) = cli.json("schedule", "list", "-f", defs, "--json")
    assert (row["name"], row["status"], row["cron_schedule"]) == ("morning", "STOPPED", "0 9 * * *")
    assert row["location"] and row["last_tick"] is None
    assert "is RUNNING" in cli.ok("schedule", "start", "morning", "-f", defs).stdout
    assert cli.json("schedule", "list", "-f", defs, "--json")[0]["status"] == "RUNNING"
    cli.ok("schedule", "stop", "morning", "-f", defs)
    assert cli.json("schedule", "list", "-f", defs, "--json")[0]["status"] == "STOPPED"
    preview = cli.json("schedule", "preview", "morning", "-f", defs, "--ticks", "2", "--json")
    assert len(preview) == 2 and preview[1]["tick_time"] - preview[0]["tick_time"] in (82800, 86400, 90000)
    assert preview[0]["run_requests"][0]["run_config"] == {"ops": {"show": {"config": {"n": 9}}}}
    missing = cli("schedule", "start", "nope", "-f", defs)
    assert missing.returncode != 0 and "no schedule named 'nope'" in missing.stderr and "morning" in missing.stderr
    assert cli("schedule", "list").returncode != 0  # no -f, no -w, no workspace.yaml


def test_sensor_commands_and_preview_stores_nothing(cli, defs, instance):
    (row,) = cli.json("sensor", "list", "-f", defs, "--json")
    assert (row["name"], row["status"], row["minimum_interval_seconds"]) == ("watcher", "STOPPED", 5)
    out = cli.ok("sensor", "preview", "watcher", "-f", defs).stdout
    assert "only-once" in out and "'seen'" in out
    assert instance.storage.get_instigator_state("watcher") is None
    assert instance.storage.get_ticks("watcher") == []
    cli.ok("sensor", "start", "watcher", "-f", defs)
    assert instance.storage.get_instigator_state("watcher")["status"] == "RUNNING"
    cli.ok("sensor", "stop", "watcher", "-f", defs)
    assert instance.storage.get_instigator_state("watcher")["status"] == "STOPPED"


def _status(cli):
    return cli.json("daemon", "status", "--json")


def test_two_daemons_on_sqlite_one_works_the_other_takes_over(cli, defs, home, wait_for):
    (home / "runyard.yaml").write_text("daemon: {lease_seconds: 3, heartbeat_interval_seconds: 0.5}\n")
    first = cli.popen("daemon", "-f", defs, start_new_session=True)
    try:
        wait_for(lambda: (_status(cli)["lease"] or {}).get("holder"), timeout=60, what="a leader")
        second = cli.popen("daemon", "-f", defs, start_new_session=True)
        try:
            status = wait_for(lambda: (s := _status(cli)) and len(s["daemons"]) == 2 and s, timeout=60,
                              what="two daemons")
            leaders = [d for d in status["daemons"] if d["leader"]]
            assert len(leaders) == 1
            holder = status["lease"]["holder"]
            assert holder.split(":")[1] == str(first.pid)
            text = cli.ok("daemon", "status").stdout
            assert "leader" in text and "standby" in text
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            new = wait_for(lambda: (s := _status(cli)["lease"]) and s["holder"] != holder and s, timeout=10,
                           what="the standby to take over")
            assert new["holder"].split(":")[1] == str(second.pid)
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, second.stderr.read()
            assert _status(cli)["lease"] is None  # released on a clean stop
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)


def test_dev_starts_everything_and_ctrl_c_leaves_no_process(cli, defs, wait_for):
    proc = cli.popen("dev", "-f", defs, start_new_session=True)
    try:
        line = ""
        while "code location" not in line:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        assert " ok " in line
        kids = wait_for(lambda: descendants(proc.pid), what="child processes")
        assert _status(cli)["lease"]["holder"].split(":")[1] == str(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        wait_for(lambda: all(pid_gone(k) for k in kids), timeout=15, what="every child to exit")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_bad_daemon_settings_name_the_key(cli, home):
    (home / "runyard.yaml").write_text("daemon:\n  lease_seconds: 0\n")
    proc = cli("daemon", "status")
    assert proc.returncode != 0
    assert "daemon.lease_seconds" in proc.stderr and "runyard.yaml" in proc.stderr
    (home / "runyard.yaml").write_text("daemon:\n  leese_seconds: 5\n")
    proc = cli("daemon", "status")
    assert proc.returncode != 0 and "leese_seconds" in proc.stderr
