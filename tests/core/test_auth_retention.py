"""Retention of the audit log (``retention.audit_days``): the daemon deletes entries older than the
limit and keeps the newer ones; only the leader prunes; the real ``runyard daemon`` prunes at start
with audit retention alone set (no ``runs_days``), and leaves runs alone.

Needs: nothing beyond Python and SQLite (a ``runyard daemon`` subprocess for the last test).
"""

from __future__ import annotations

import time

import pytest

from runyard.daemon import Daemon
from runyard.storage.records import AuditEntry, RunRecord, RunStatus
from runyard.testing import SuiteHome, wait_until

DAY = 86400.0


def entry(age_days: float, action: str = "launchRun") -> AuditEntry:
    return AuditEntry(action=action, actor="alice", via="basic", result="ok", timestamp=time.time() - age_days * DAY)


@pytest.fixture
def suite(tmp_path):
    s = SuiteHome(tmp_path, {"retention": {"audit_days": 30}})
    yield s
    s.close()


def test_prunes_only_entries_older_than_the_limit(suite):
    storage = suite.instance.storage
    old = [storage.add_audit_entry(entry(age)) for age in (400, 31)]
    kept = [storage.add_audit_entry(entry(age)) for age in (29, 0)]
    leader, standby = Daemon(suite.instance), Daemon(suite.instance)
    assert leader.lease.tick() and not standby.lease.tick()
    try:
        assert standby.prune_audit_log() == 0
        assert leader.prune_audit_log() == 2
    finally:
        standby.stop()
        leader.stop()
    assert [e.id for e in storage.get_audit_entries()] == [e.id for e in reversed(kept)]
    assert all(e.id not in {k.id for k in kept} for e in old)


def test_bad_audit_retention_names_the_key(cli, home):
    (home / "runyard.yaml").write_text("retention:\n  audit_days: 0\n")
    proc = cli("instance", "info")
    assert proc.returncode == 2 and "retention.audit_days" in proc.stderr


def test_the_daemon_process_prunes_the_audit_log_at_start(cli, home):
    from runyard import Instance

    (home / "runyard.yaml").write_text("retention:\n  audit_days: 1\n  interval_seconds: 3600\n")
    inst = Instance.open(home=str(home))
    try:
        storage = inst.storage
        old_run = RunRecord(run_id="old1", job_name="etl", status=RunStatus.SUCCESS)
        old_run.created_at = time.time() - 30 * DAY
        storage.add_run(old_run)
        storage.add_audit_entry(entry(3, "old"))
        storage.add_audit_entry(entry(0, "new"))
        daemon = cli.popen("daemon")
        try:
            wait_until(lambda: [e.action for e in storage.get_audit_entries()] == ["new"], timeout=60,
                       what="the old audit entry to be pruned")
            status = wait_until(lambda: next((d for d in cli.json("daemon", "status", "--json")["daemons"]
                                              if "retention" in d["loops"]), None), timeout=30,
                                what="a retention heartbeat")
            assert status["loops"]["retention"]["last_error"] is None
        finally:
            daemon.terminate()
            daemon.communicate(timeout=30)
        assert daemon.returncode == 0
        assert storage.get_run("old1") is not None  # runs_days is not set: runs are kept
    finally:
        inst.dispose()
