"""Status that tells the truth (issue 10, item 7): a running daemon picks up definitions added by a
code-location reload made in another process; ``runyard daemon status`` (and GraphQL) derives a
daemon's state from its heartbeat's age, so a kill -9'd daemon shows as dead, not standby; a
separately run code server that stops shows as unavailable in ``runyard workspace list`` and in the
web UI.

Needs: nothing beyond Python, SQLite and Linux; every daemon, code server, web UI and run worker is a
real process.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from runyard import Instance
from runyard.daemon.status import daemon_state
from runyard.testing import wait_until

BASE = """
from runyard import Config, Definitions, job, op, schedule


class NCfg(Config):
    n: int


@op
def show(config: NCfg) -> None:
    pass


@job
def shown():
    show()
"""
V1 = BASE + "\ndefs = Definitions(jobs=[shown])\n"
V2 = BASE + '''

@schedule("* * * * *", job=shown)
def added(context):
    return {"ops": {"show": {"config": {"n": context.scheduled_time.minute}}}}


defs = Definitions(jobs=[shown], schedules=[added])
'''
FAST = "daemon: {heartbeat_interval_seconds: 0.5, schedule_interval_seconds: 0.5, lease_seconds: 30}\n"


@pytest.fixture
def storage(home):
    (home / "runyard.yaml").write_text(FAST)
    instance = Instance.open(home=str(home))
    yield instance.storage
    instance.dispose()


def _status(cli) -> dict:
    return cli.json("daemon", "status", "--json")


def _start_daemon(cli, procs, *args: str) -> subprocess.Popen:
    proc = procs.add(cli.popen("daemon", *args, start_new_session=True))
    wait_until(lambda: proc.poll() is not None or (_status(cli)["lease"] or {}).get("holder"), timeout=60,
               what="the daemon to lead")
    assert proc.poll() is None, proc.stderr.read()
    return proc


def _start_code_server(cli, procs, defs: Path, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    ready = tmp_path / f"ready-{len(procs.started)}.json"
    proc = procs.add(cli.popen("code-server", "-f", defs, "--port", "0", "--location-name", "remote",
                               "--ready-file", ready, start_new_session=True))
    wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60, what="the code server")
    assert proc.poll() is None, proc.stderr.read()
    return proc, json.loads(ready.read_text())["port"]


def _tick_after_reload(cli, storage, daemon, reload_args):
    """The daemon runs no schedule named ``added``; the definitions file gains it, a reload happens
    in another process, and the daemon ticks it."""
    # as if ``runyard schedule start added`` had run two minutes ago: due ticks are waiting
    storage.set_instigator_state("added", "schedule", "RUNNING", {"cursor_time": time.time() - 125})
    time.sleep(1.5)  # a few daemon passes: the schedule is unknown to it, nothing ticks
    assert storage.get_ticks("added") == []
    cli.ok("workspace", "reload", *reload_args)
    ticks = wait_until(lambda: [t for t in storage.get_ticks("added") if t.status == "SUCCESS"], timeout=30,
                       what="the daemon to tick the schedule added by the reload")
    run_ids = [r for t in ticks for r in t.run_ids]
    wait_until(lambda: all(storage.get_run(r).status.is_finished for r in run_ids), timeout=60,
               what="the tick's runs to finish")
    assert {str(storage.get_run(r).status) for r in run_ids} == {"SUCCESS"}
    assert daemon.poll() is None


def test_reload_in_another_process_reaches_the_daemons_own_code_server(cli, storage, procs, write_defs, tmp_path):
    defs = write_defs(V1)
    ws = tmp_path / "workspace.yaml"
    ws.write_text(f"load_from:\n  - python_file: {defs}\n")
    daemon = _start_daemon(cli, procs, "-w", ws)
    defs.write_text(V2)
    # ``runyard workspace reload`` starts its own server for a python_file entry: the daemon's
    # server learns of the reload through storage
    _tick_after_reload(cli, storage, daemon, ("-w", ws))
    assert procs.stop(daemon) == 0


def test_reload_of_a_shared_code_server_reaches_the_daemon(cli, storage, procs, write_defs, tmp_path):
    defs = write_defs(V1)
    _, port = _start_code_server(cli, procs, defs, tmp_path)
    ws = tmp_path / "workspace.yaml"
    ws.write_text(f"load_from:\n  - code_server: {{host: 127.0.0.1, port: {port}, location_name: remote}}\n")
    daemon = _start_daemon(cli, procs, "-w", ws)
    defs.write_text(V2)
    _tick_after_reload(cli, storage, daemon, ("-w", ws, "remote"))
    assert procs.stop(daemon) == 0


def test_states_from_heartbeat_age():
    assert daemon_state(age_seconds=1, interval=5, leader=True, stopped=False) == "leader"
    assert daemon_state(age_seconds=1, interval=5, leader=False, stopped=False) == "standby"
    assert daemon_state(age_seconds=16, interval=5, leader=False, stopped=False) == "stale"
    assert daemon_state(age_seconds=31, interval=5, leader=True, stopped=False) == "dead"
    assert daemon_state(age_seconds=999, interval=5, leader=False, stopped=True) == "stopped"


def test_a_killed_daemon_is_dead_in_status_not_standby(cli, storage, procs, tiny_defs, tmp_path):
    first = _start_daemon(cli, procs, "-f", tiny_defs)
    id_file = tmp_path / "second.id"  # what a container's health probe reads (`daemon --id-file`)
    second = procs.add(cli.popen("daemon", "-f", tiny_defs, "--id-file", id_file, start_new_session=True))
    status = wait_until(lambda: (s := _status(cli)) and len(s["daemons"]) == 2 and s, timeout=60,
                        what="two daemons")
    assert sorted(d["state"] for d in status["daemons"]) == ["leader", "standby"]
    killed = next(d["daemon_id"] for d in status["daemons"] if d["state"] == "standby")
    assert id_file.read_text().strip() == killed
    assert "standby" in cli.ok("daemon", "status", "--check", killed).stdout
    unknown = cli("daemon", "status", "--check", "nobody:1:abc")
    assert unknown.returncode == 1 and "daemon nobody:1:abc: no heartbeat in storage" in unknown.stderr
    procs.stop(second, signal.SIGKILL)
    assert killed.split(":")[1] == str(second.pid)
    started = time.monotonic()
    dead = wait_until(lambda: next(d for d in _status(cli)["daemons"] if d["daemon_id"] == killed)["state"] == "dead"
                      and _status(cli), timeout=20, what="the killed daemon to show as dead")
    assert time.monotonic() - started < 20
    row = next(d for d in dead["daemons"] if d["daemon_id"] == killed)
    assert row["age_seconds"] > 3 * row["heartbeat_interval_seconds"] and not row["leader"]
    text = cli.ok("daemon", "status").stdout
    assert re.search(rf"{re.escape(killed)}\s+dead\s+\(last heartbeat [\d.]+s ago", text), text
    check = cli("daemon", "status", "--check", killed)
    assert check.returncode == 1 and f"daemon {killed}: dead (last heartbeat" in check.stderr, check.stderr
    # the leader is killed too: dead as well, although its lease has not expired yet
    leader = next(d["daemon_id"] for d in dead["daemons"] if d["state"] == "leader")
    procs.stop(first, signal.SIGKILL)
    after = wait_until(lambda: (s := _status(cli)) and all(d["state"] == "dead" for d in s["daemons"]) and s,
                       timeout=20, what="both daemons to show as dead")
    row = next(d for d in after["daemons"] if d["daemon_id"] == leader)
    assert row["leader"] and after["lease"]["expires_in_seconds"] > 0
    assert "still holds the lease" in cli.ok("daemon", "status").stdout
