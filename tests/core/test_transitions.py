"""Run status transitions are compare-and-set, and a status changes in the same transaction as the
event that records it — checked with several real processes racing on one SQLite file.

Needs: real subprocesses and a SQLite file under pytest's tmp_path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from runyard.errors import InvalidTransitionError
from runyard.execution.api import prepare_run
from runyard.storage.records import Event, EventType, RunStatus
from runyard.workspace.loader import code_pointer_for, load_definitions

RACER = r'''
import json
import os
import sys
import time

from runyard import Instance, RunStatus

home, go_file, ready_file, name = sys.argv[1:5]
run_ids = json.loads(sys.argv[5])
instance = Instance.open(home=home)
instance.get_run(run_ids[0])  # connect and load plugins before the start signal
open(ready_file, "w").close()
while not os.path.exists(go_file):
    time.sleep(0.001)
won = [run_id for run_id in run_ids
       if instance.transition(run_id, [RunStatus.NOT_STARTED], RunStatus.STARTING, f"claimed by {name}")]
print(json.dumps(won))
'''


def race(tmp_path, home, run_ids: list[str], racers: int) -> dict[str, list[str]]:
    """Start ``racers`` processes that all try NOT_STARTED -> STARTING on every run at the same moment;
    return racer name -> run ids it moved."""
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    go = tmp_path / "go"
    procs = {}
    for n in range(racers):
        name = f"racer-{n}"
        procs[name] = subprocess.Popen(
            [sys.executable, str(script), str(home), str(go), str(tmp_path / f"{name}.ready"), name,
             json.dumps(run_ids)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{name}.ready").exists() for name in procs):
        assert time.monotonic() < deadline, "racers did not get ready"
        assert all(p.poll() is None for p in procs.values()), [p.stderr.read() for p in procs.values()]
        time.sleep(0.01)
    go.touch()
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results[name] = json.loads(out)
    return results


def test_racing_processes_start_each_run_exactly_once(instance, home, tmp_path):
    runs = [instance.create_run(job_name="contested") for _ in range(5)]
    run_ids = [r.run_id for r in runs]
    results = race(tmp_path, home, run_ids, racers=6)

    winners = {run_id: [name for name, won in results.items() if run_id in won] for run_id in run_ids}
    assert all(len(names) == 1 for names in winners.values()), winners
    for run_id, (winner,) in winners.items():
        assert instance.get_run(run_id).status == RunStatus.STARTING
        events = instance.storage.get_events(run_id)
        assert [(str(e.event_type), e.message) for e in events] == [("RUN_STARTING", f"claimed by {winner}")]


def test_two_run_workers_racing_for_one_run(cli, instance, sample_defs):
    pointer = code_pointer_for(python_file=str(sample_defs))
    job = load_definitions(pointer).get_job("etl")
    run = prepare_run(instance, job, code_pointer=pointer)
    procs = [cli.popen("execute-run", run.run_id) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs)
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    (ok_code, ok_out, _), (lost_code, _, lost_err) = outcomes
    assert ok_code == 0 and f"run {run.run_id} finished: SUCCESS" in ok_out
    assert lost_code == 2
    assert f"Run {run.run_id}" in lost_err  # refused: already STARTED (or already finished)
    kinds = [str(e.event_type) for e in instance.storage.get_events(run.run_id)]
    assert kinds.count("RUN_START") == 1
    assert kinds.count("RUN_SUCCESS") == 1
    assert kinds.count("STEP_START") == 3
    assert instance.get_run(run.run_id).status == RunStatus.SUCCESS


def test_refused_transition_writes_nothing(instance):
    run = instance.create_run(job_name="cas")
    extra = Event(run_id=run.run_id, event_type=EventType.ENGINE_EVENT, message="only with the change")
    assert not instance.transition(run.run_id, [RunStatus.STARTED], RunStatus.SUCCESS, events=[extra])
    assert instance.get_run(run.run_id).status == RunStatus.NOT_STARTED
    assert instance.storage.get_events(run.run_id) == []

    assert instance.transition(run.run_id, [RunStatus.NOT_STARTED], RunStatus.STARTING, events=[extra])
    kinds = [str(e.event_type) for e in instance.storage.get_events(run.run_id)]
    assert kinds == ["ENGINE_EVENT", "RUN_STARTING"]
    # the same transition again is refused: the status is no longer the expected one
    assert not instance.transition(run.run_id, [RunStatus.NOT_STARTED], RunStatus.STARTING)
    assert len(instance.storage.get_events(run.run_id)) == 2


def test_status_and_event_commit_or_roll_back_together(instance):
    run = instance.create_run(job_name="atomic")
    unstorable = Event(run_id=run.run_id, event_type=EventType.ENGINE_EVENT, message=None)  # NOT NULL column
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for the bad row
        instance.storage.transition_run(run.run_id, [RunStatus.NOT_STARTED], RunStatus.STARTING,
                                        [unstorable])
    # the event insert failed, so the status change in the same transaction was rolled back
    assert instance.get_run(run.run_id).status == RunStatus.NOT_STARTED
    assert instance.storage.get_events(run.run_id) == []
    assert instance.transition(run.run_id, [RunStatus.NOT_STARTED], RunStatus.STARTING)


def test_finish_statuses_set_times_once(instance):
    run = instance.create_run(job_name="times")
    assert instance.transition(run.run_id, [RunStatus.NOT_STARTED], RunStatus.STARTED)
    started = instance.get_run(run.run_id)
    assert started.start_time is not None and started.end_time is None
    assert instance.transition(run.run_id, [RunStatus.STARTED], RunStatus.SUCCESS)
    finished = instance.get_run(run.run_id)
    assert finished.end_time >= finished.start_time
    assert not instance.transition(run.run_id, [RunStatus.STARTED], RunStatus.FAILURE)
    assert instance.get_run(run.run_id).status == RunStatus.SUCCESS


def test_launching_a_run_twice_is_refused(instance, sample_defs):
    pointer = code_pointer_for(python_file=str(sample_defs))
    job = load_definitions(pointer).get_job("etl")
    run = prepare_run(instance, job, code_pointer=pointer)
    assert instance.transition(run.run_id, [RunStatus.NOT_STARTED], RunStatus.CANCELED)
    with pytest.raises(InvalidTransitionError, match="only a NOT_STARTED or QUEUED run can be launched"):
        instance.launch_run(run)
    assert [str(e.event_type) for e in instance.storage.get_events(run.run_id)] == ["RUN_CANCELED"]
