"""runyard.operations: following a run's events (woken by polling on SQLite), deleting a run with
each component's files, and the workspace and instigator refusals the front ends map.

Needs: nothing beyond Python (SQLite files under pytest's tmp_path).
"""

from __future__ import annotations

import threading
import time

import pytest

from runyard.errors import InvalidTransitionError
from runyard.launchers.process import ProcessRunLauncher
from runyard.operations.delete import delete_run
from runyard.operations.errors import NotFoundError
from runyard.operations.follow import follow_events, next_events
from runyard.operations.instigators import find_definition
from runyard.operations.workspace import WorkspaceUsageError, open_workspace
from runyard.storage.records import RunStatus


def _later(seconds: float, fn, *args) -> threading.Timer:
    timer = threading.Timer(seconds, fn, args)
    timer.start()
    return timer


def test_follow_wakes_by_polling_on_sqlite(instance):
    storage = instance.storage
    assert not storage.supports_notifications
    run = instance.create_run(job_name="j")
    pages = follow_events(instance, run.run_id, wait_step=30.0)
    _later(0.3, instance.report_engine_event, run.run_id, "one")
    start = time.monotonic()
    page = next(pages)
    assert [e.message for e in page.events] == ["one"] and not page.done
    assert time.monotonic() - start < 5  # far sooner than the 30 s wait step: a poll saw it
    # It is the storage's poll that wakes the loop: with a 3 s poll the event waits for it.
    storage.poll_interval = 3.0
    _later(0.2, instance.report_engine_event, run.run_id, "two")
    start = time.monotonic()
    page = next(pages)
    assert [e.message for e in page.events] == ["two"]
    assert 2.5 <= time.monotonic() - start < 15
    storage.poll_interval = 0.05
    instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.CANCELED, "stop")
    last = next(pages)
    assert last.done and [str(e.event_type) for e in last.events] == ["RUN_CANCELED"]
    assert next(pages, None) is None


def test_next_events_is_a_long_poll_with_a_deadline(instance):
    run = instance.create_run(job_name="j")
    start = time.monotonic()
    page = next_events(instance, run.run_id, wait_seconds=0.4)
    assert page.events == [] and page.done and page.cursor is None
    assert 0.35 <= time.monotonic() - start < 5
    instance.report_engine_event(run.run_id, "hello")
    page = next_events(instance, run.run_id, wait_seconds=10)
    assert [e.message for e in page.events] == ["hello"]
    assert next_events(instance, run.run_id, after_id=page.cursor, wait_seconds=0).events == []


def _write(path, text="x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _files_of(instance, run_id: str) -> list:
    """Where each component writes for a run: the default IO manager, the compute log manager and
    the process launcher."""
    from pathlib import Path

    logs = instance.compute_log_manager.files(run_id, "step")
    return [Path(instance.home) / "storage" / run_id / "step" / "result", Path(logs.stdout), Path(logs.stderr),
            Path(ProcessRunLauncher.log_path(instance.home, run_id))]


def test_delete_removes_each_components_files_and_nothing_else(instance):
    doomed = instance.create_run(job_name="j", status=RunStatus.SUCCESS)
    kept = instance.create_run(job_name="j", status=RunStatus.SUCCESS)
    for run in (doomed, kept):
        for path in _files_of(instance, run.run_id):
            _write(path)
    delete_run(instance, doomed.run_id)
    assert instance.storage.get_run(doomed.run_id) is None
    assert not any(p.exists() for p in _files_of(instance, doomed.run_id))
    assert all(p.exists() for p in _files_of(instance, kept.run_id))
    delete_run(instance, kept.run_id, files=False)
    assert instance.storage.get_run(kept.run_id) is None
    assert all(p.exists() for p in _files_of(instance, kept.run_id))


def test_each_component_deletes_only_its_own_files(instance):
    from runyard.definitions.io_manager import FilesystemIOManager
    from runyard.launchers.base import DeleteRunFilesContext

    run = instance.create_run(job_name="j", status=RunStatus.SUCCESS)
    io_out, stdout, stderr, worker_log = _files_of(instance, run.run_id)
    for path in (io_out, stdout, stderr, worker_log):
        _write(path)
    instance.compute_log_manager.delete_run_files(run.run_id)
    assert not stdout.exists() and not stderr.exists() and io_out.exists() and worker_log.exists()
    instance.run_launcher.delete_run_files(DeleteRunFilesContext(instance=instance, run=run))
    assert not worker_log.exists() and io_out.exists()
    FilesystemIOManager.delete_default_run_outputs(instance.home, run.run_id)
    assert not io_out.exists()
    # already gone: not an error
    instance.compute_log_manager.delete_run_files(run.run_id)
    instance.run_launcher.delete_run_files(DeleteRunFilesContext(instance=instance, run=run))


def test_delete_refuses_runs_in_progress(instance):
    started = instance.create_run(job_name="j", status=RunStatus.STARTED)
    with pytest.raises(InvalidTransitionError, match="terminate it before deleting it"):
        delete_run(instance, started.run_id)
    queued = instance.create_run(job_name="j", status=RunStatus.QUEUED)
    with pytest.raises(Exception, match="terminate it before deleting it"):
        delete_run(instance, queued.run_id, finished_only=True)
    delete_run(instance, queued.run_id)  # not started yet: may go
    assert instance.storage.get_run(started.run_id) is not None


def test_open_workspace_needs_files_or_a_workspace_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_workspace(required=False) is None
    with pytest.raises(WorkspaceUsageError, match="-f FILE or a workspace file") as info:
        open_workspace()
    assert info.value.exit_code == 2
    with pytest.raises(WorkspaceUsageError, match="not both"):
        open_workspace(["defs.py"], "workspace.yaml")


def test_an_unknown_schedule_names_the_known_ones():
    with pytest.raises(NotFoundError, match="no schedule named 'nope' in the workspace; schedules: none"):
        find_definition([], "schedule", "nope")
