"""Run retries on Postgres: two daemons' passes, each with its own instance and connection pool,
race over the same failed runs; every failed run gets one retry, submitted once, and one "Retried
as" engine event (the retry's id is derived from the failed run's; its insert and the event share a
transaction, so the loser's insert fails on the primary key and writes nothing).

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (see conftest.py); the code server is a real process.
"""

from __future__ import annotations

import threading

from runyard.daemon import Daemon, retries
from runyard.instance.instance import Instance
from runyard.operations.launch import create_from_location, validate_on_location
from runyard.operations.workspace import open_workspace
from runyard.storage.records import RunFilter, RunStatus
from runyard.tags import PARENT_RUN_ID_TAG
from runyard.testing import SuiteHome

DEFS = """
class NCfg(Config):
    n: int


@op
def show(config: NCfg) -> None:
    record("ran", config.n)


@job
def shown():
    show()


defs = Definitions(jobs=[shown])
"""
CONFIG = {"ops": {"show": {"config": {"n": 1}}}}


def test_two_daemons_racing_on_postgres_make_one_retry_per_failed_run(fresh_db, tmp_path):
    suite = SuiteHome(tmp_path, {"storage": {"postgres": {"url": fresh_db}},
                                 "run_coordinator": {"queued": {}}, "run_monitoring": {"enabled": False},
                                 "run_retries": {"enabled": True, "max_retries": 1}})
    defs = suite.write_defs(DEFS, name="retry_defs.py")
    workspace = open_workspace([str(defs)]).start()
    other = Instance.open(home=str(suite.home), instance_file=str(suite.instance_file))
    daemons = [Daemon(suite.instance, workspace, daemon_id="a"), Daemon(other, workspace, daemon_id="b")]
    try:
        loc = workspace.locations()[0]
        validation = validate_on_location(loc, "shown", CONFIG)
        failed = []
        for _ in range(12):
            run = create_from_location(suite.instance, loc, validation, run_config=CONFIG)
            assert suite.instance.transition(run.run_id, [RunStatus.NOT_STARTED], RunStatus.FAILURE,
                                             "worker died", data={"reason": "oom_killed"})
            failed.append(suite.instance.get_run(run.run_id))
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def race(d: Daemon) -> None:
            try:
                barrier.wait()
                for run in failed:  # each daemon's pass over the same runs (the lease normally serializes them)
                    retries._consider(d, run, d.instance.settings.run_retries)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(d,)) for d in daemons]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        storage = suite.instance.storage
        for run in failed:
            made = storage.get_runs(RunFilter(tags={PARENT_RUN_ID_TAG: run.run_id}))
            assert [r.run_id for r in made] == [retries.retry_run_id(run.run_id)]
            assert made[0].status == RunStatus.QUEUED
            assert len(storage.get_events(made[0].run_id, event_types=["RUN_ENQUEUED"])) == 1
            retried = [e for e in storage.get_events(run.run_id, event_types=["ENGINE_EVENT"])
                       if e.message.startswith("Retried as")]
            assert len(retried) == 1, [e.message for e in retried]
    finally:
        for d in daemons:
            d.stop()
        workspace.shutdown()
        other.dispose()
        suite.close()
