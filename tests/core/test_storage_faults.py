"""SQLite on a disk that fills up or turns read-only, and the permissions of what runyard writes.

* A run whose disk fills up mid-run keeps its events and waits; once the disk allows writing
  again the run ends as its steps did (here FAILURE: the op's output could not be stored), with
  every event in order.
* Past ``run_worker.outage_tolerance_seconds`` the worker exits non-zero with one clear message
  (the database path and the OS reason) naming the spill file; ``runyard run health`` then finishes
  the run FAILURE — the run is never left STARTED with nobody to say so.
* A new home on a read-only disk is a clear error, not a traceback.
* Under umask 022 the home, the database and its -wal/-shm, compute logs, run logs, stored outputs
  and spill files are created private (0700 directories, 0600 files).

Needs: root (mounts a private tmpfs of a few MB per test with ``mount -t tmpfs``, remounts it
read-only with ``mount -o remount,ro``; unmounted in teardown, also when a test fails); real
subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from runyard.testing import wait_until

TICKS = 50

DEFS = f'''
import time

from runyard import job, op


@op
def work(context) -> int:
    for i in range({TICKS}):
        context.log.info(f"tick {{i}}")
        time.sleep(0.1)
    return {TICKS}


@op
def after(context, n: int) -> None:
    print("stdout of after")
    context.log.info(f"done {{n}}")


@job
def disk_job():
    after(work())
'''


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"mount {' '.join(args)} failed: {proc.stderr.strip()}"


@pytest.fixture
def disk(tmp_path: Path):
    """A private tmpfs of 16 MB, unmounted at the end whatever happened."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount a private tmpfs: run them as root", pytrace=False)
    mnt = tmp_path / "disk"
    mnt.mkdir()
    _mount("-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path) -> Path:
    """Fill the disk to the last byte; return the filler file (delete it to free the space)."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # big chunks, then down to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _free(filler: Path) -> None:
    try:
        filler.unlink()
    except FileNotFoundError:
        pass


def _start(cli, defs: Path, home: Path, **env: str) -> tuple[subprocess.Popen, str]:
    proc = cli.popen("job", "execute", "-f", defs, "-j", "disk_job", env={"RUNYARD_HOME": str(home), **env})
    first = proc.stdout.readline()
    match = re.search(r"as run ([0-9a-f]{32})", first)
    if not match:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no run started: {first}{out}{err}")
    return proc, match.group(1)


def _events(cli, home: Path, run_id: str) -> list[dict]:
    out = cli.ok("run", "logs", run_id, "--json", "-v", env={"RUNYARD_HOME": str(home)}).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _ticks(cli, home: Path, run_id: str) -> int:
    proc = cli("run", "logs", run_id, "--json", env={"RUNYARD_HOME": str(home)})
    if proc.returncode:
        return 0
    return sum(1 for line in proc.stdout.splitlines() if '"tick ' in line)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def test_run_waits_for_the_disk_and_ends_as_its_steps_did(cli, write_defs, disk):
    home = disk / "home"
    home.mkdir()
    (home / "runyard.yaml").write_text("run_worker:\n  outage_tolerance_seconds: 120\n")
    defs = write_defs(DEFS)
    proc, run_id = _start(cli, defs, home)
    filler = disk / "filler"
    try:
        wait_until(lambda: _ticks(cli, home, run_id) >= 3, 60, what="some events to be stored")
        # (A disk cannot be remounted read-only under a process writing to it: the kernel answers
        # "busy". A read-only disk is tested at start, below.)
        filler = _fill(disk)
        try:
            time.sleep(8)  # the op finishes during the fault: its last events and the run's end wait
            assert proc.poll() is None, proc.communicate()
        finally:
            _free(filler)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, out + err  # the run failed (below); the worker did not crash
        assert "Traceback" not in err, err
        assert "storage is back" in err
        events = _events(cli, home, run_id)
        logged = [e["message"] for e in events if e["message"].startswith("tick ")]
        assert logged == [f"tick {i}" for i in range(TICKS)], Counter(logged).most_common(3)
        kinds = Counter(e["event_type"] for e in events)
        assert kinds["RUN_FAILURE"] == 1 and kinds["RUN_SUCCESS"] == 0, kinds
        # the op's output could not be stored on the full disk: that, not the event log, failed the run
        failure = next(e for e in events if e["event_type"] == "STEP_FAILURE")
        assert failure["step_key"] == "work" and "No space left on device" in failure["message"]
        assert events[-1]["event_type"] == "RUN_FAILURE"
        run = cli.json("run", "show", run_id, "--json", env={"RUNYARD_HOME": str(home)})
        assert run["status"] == "FAILURE"
    finally:
        _kill(proc)


def test_disk_full_past_the_tolerance_is_a_clear_error_and_run_health_finishes_the_run(cli, write_defs, disk,
                                                                                       tmp_path):
    home = disk / "home"
    home.mkdir()
    spill_dir = tmp_path / "spill"  # elsewhere: the full disk cannot hold it
    (home / "runyard.yaml").write_text(f"run_worker:\n  outage_tolerance_seconds: 3\n  spill_dir: {spill_dir}\n")
    defs = write_defs(DEFS)
    proc, run_id = _start(cli, defs, home)
    filler = disk / "filler"
    try:
        wait_until(lambda: _ticks(cli, home, run_id) >= 3, 60, what="some events to be stored")
        filler = _fill(disk)
        out, err = proc.communicate(timeout=90)
        assert proc.returncode not in (0, None), out + err
        assert "Traceback" not in err, err
        assert str(home / "runyard.db") in err, err  # the path
        assert "disk is full" in err, err  # the reason
        assert "outage_tolerance_seconds" in err
        spill = spill_dir / f"{run_id}.jsonl"
        assert f"kept in {spill}" in err, err
        assert stat.S_IMODE(spill.stat().st_mode) == 0o600
        records = [json.loads(line) for line in spill.read_text().splitlines()]
        _free(filler)
        stored = [e["message"] for e in _events(cli, home, run_id)]
        # the spill file continues exactly where the stored events stop
        logged = [m for m in stored + [r["message"] for r in records] if m.startswith("tick ")]
        assert logged == [f"tick {i}" for i in range(TICKS)]
        # the op's output could not be stored either (disk full): the run's end it could not write
        assert records[-1]["event_type"] == "RUN_FAILURE"
        # the worker is gone: the health check finishes the run FAILURE
        health = cli("run", "health", run_id, env={"RUNYARD_HOME": str(home)})
        assert health.returncode == 0, health.stderr
        assert "dead" in health.stdout, health.stdout
        run = cli.json("run", "show", run_id, "--json", env={"RUNYARD_HOME": str(home)})
        assert run["status"] == "FAILURE"
    finally:
        _free(filler)
        _kill(proc)


def test_new_home_on_a_read_only_disk_is_a_clear_error(cli, write_defs, disk):
    _mount("-o", "remount,ro", str(disk))
    home = disk / "home"
    defs = write_defs(DEFS)
    for args in (("run", "list"), ("job", "execute", "-f", defs, "-j", "disk_job")):
        proc = cli(*args, env={"RUNYARD_HOME": str(home)})
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr, proc.stderr
        assert str(home) in proc.stderr and "Read-only file system" in proc.stderr, proc.stderr


def test_existing_database_on_a_read_only_disk_is_a_clear_error(cli, write_defs, disk):
    home = disk / "home"
    defs = write_defs(DEFS)
    cli.ok("run", "list", env={"RUNYARD_HOME": str(home)})
    _mount("-o", "remount,ro", str(disk))
    proc = cli("job", "execute", "-f", defs, "-j", "disk_job", env={"RUNYARD_HOME": str(home)})
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert str(home / "runyard.db") in proc.stderr, proc.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_database_and_logs_are_private_under_umask_022(cli, write_defs, tmp_path):
    home = tmp_path / "fresh" / "home"  # does not exist yet: runyard creates it
    defs = write_defs(DEFS.replace(f"range({TICKS})", "range(2)"))
    old = os.umask(0o022)
    try:
        launched = cli.ok("job", "launch", "-f", defs, "-j", "disk_job", "--wait",
                          env={"RUNYARD_HOME": str(home)}).stdout
        cli.ok("job", "execute", "-f", defs, "-j", "disk_job", env={"RUNYARD_HOME": str(home)})
        # -wal and -shm exist while a connection is open; SQLite gives them the database's mode
        conn = sqlite3.connect(home / "runyard.db")
        try:
            conn.execute("SELECT count(*) FROM runs").fetchall()
            for name in ("runyard.db", "runyard.db-wal", "runyard.db-shm"):
                assert _mode(home / name) == 0o600, name
        finally:
            conn.close()
    finally:
        os.umask(old)
    run_id = re.search(r"Launched run ([0-9a-f]{32})", launched).group(1)
    assert _mode(home) == 0o700 and _mode(home.parent) == 0o700
    everything = [home / "logs", *(home / "logs").rglob("*"), home / "storage", *(home / "storage").rglob("*")]
    assert any(p.name.endswith(".log") and "runs" in p.parts for p in everything), everything  # run log
    assert any(p.name.startswith("after.") for p in everything), everything  # compute logs of a step
    loose = {str(p.relative_to(home)): oct(_mode(p)) for p in everything
             if _mode(p) != (0o700 if p.is_dir() else 0o600)}
    assert not loose, loose
    assert (home / "logs" / "runs" / f"{run_id}.log").exists()


# ---- the event sink under a storage that fails on demand (in this process, no disk tricks) ----------
class _Flaky:
    """Make ``storage``'s writes fail with StorageError while ``down`` is set; ``commit_then_fail``
    makes the next status change commit and still report an error (a COMMIT whose answer was lost)."""

    def __init__(self, storage, monkeypatch):
        from runyard.errors import StorageUnavailableError as StorageError

        self.down = False
        self.commit_then_fail = False
        real_store, real_transition = storage.store_events, storage.transition_run

        def store_events(events):
            if self.down:
                raise StorageError("Storage test at test://: failed: server closed the connection")
            return real_store(events)

        def transition_run(*args, **kwargs):
            if self.down:
                raise StorageError("Storage test at test://: failed: server closed the connection")
            result = real_transition(*args, **kwargs)
            if self.commit_then_fail:
                self.commit_then_fail = False
                raise StorageError("Storage test at test://: failed: connection lost during COMMIT")
            return result

        monkeypatch.setattr(storage, "store_events", store_events)
        monkeypatch.setattr(storage, "transition_run", transition_run)


def _sink_instance(tmp_path, tolerance: float, buffered: int):
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunStatus

    instance = Instance.from_yaml(str(tmp_path / "home"), f"run_worker:\n  outage_tolerance_seconds: {tolerance}\n"
                                                         f"  max_buffered_events: {buffered}\n")
    run = instance.create_run(job_name="j")
    assert instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTED)
    return instance, run


def test_sink_keeps_order_through_memory_and_spill_and_waits_for_storage(tmp_path, monkeypatch):
    import threading

    from runyard.execution.events import EventSink
    from runyard.execution.run_worker import _transition, outage_policy
    from runyard.storage.records import EventType, RunStatus

    instance, run = _sink_instance(tmp_path, tolerance=60, buffered=10)
    flaky = _Flaky(instance.storage, monkeypatch)
    sink = EventSink(instance.storage, run.run_id, max_batch=7, outage=outage_policy(instance)).start()
    for i in range(5):
        sink.emit(EventType.ENGINE_EVENT, f"e{i}")
    sink.flush()
    flaky.down = True
    for i in range(5, 60):  # never raises, whatever storage does
        sink.emit(EventType.ENGINE_EVENT, f"e{i}")
    spill = tmp_path / "home" / "spill" / f"{run.run_id}.jsonl"
    assert spill.exists() and stat.S_IMODE(spill.stat().st_mode) == 0o600
    assert sink.in_outage
    threading.Timer(1.0, lambda: setattr(flaky, "down", False)).start()
    flaky.commit_then_fail = True  # the first attempt after the outage commits but reports an error
    assert _transition(instance, run, sink, [RunStatus.STARTED], RunStatus.SUCCESS, "done")
    sink.close()
    events = instance.storage.get_events(run.run_id)
    messages = [e.message for e in events if e.message.startswith("e")]
    assert messages == [f"e{i}" for i in range(60)]
    assert [str(e.event_type) for e in events].count("RUN_SUCCESS") == 1
    assert instance.get_run(run.run_id).status == RunStatus.SUCCESS
    assert not spill.exists()


def test_sink_gives_up_after_the_tolerance_with_everything_in_the_spill_file(tmp_path, monkeypatch):
    from runyard.errors import StorageOutageError
    from runyard.execution.events import EventSink
    from runyard.execution.run_worker import _transition, outage_policy
    from runyard.storage.records import EventType, RunStatus

    instance, run = _sink_instance(tmp_path, tolerance=1, buffered=4)
    flaky = _Flaky(instance.storage, monkeypatch)
    sink = EventSink(instance.storage, run.run_id, max_batch=3, outage=outage_policy(instance))
    sink.emit(EventType.ENGINE_EVENT, "stored")
    sink.flush()
    flaky.down = True
    for i in range(20):
        sink.emit(EventType.ENGINE_EVENT, f"e{i}")
    start = time.monotonic()
    with pytest.raises(StorageOutageError) as err:
        _transition(instance, run, sink, [RunStatus.STARTED], RunStatus.FAILURE, "it failed")
    assert time.monotonic() - start < 10
    spill = tmp_path / "home" / "spill" / f"{run.run_id}.jsonl"
    message = str(err.value)
    assert "run_worker.outage_tolerance_seconds (1s)" in message and f"kept in {spill}" in message
    assert "server closed the connection" in message and "21 unwritten event(s)" in message
    records = [json.loads(line) for line in spill.read_text().splitlines()]
    assert [r["message"] for r in records] == [f"e{i}" for i in range(20)] + ["it failed"]
    assert records[-1]["event_type"] == "RUN_FAILURE"
    sink.close(raise_errors=False)
    flaky.down = False
    assert [e.message for e in instance.storage.get_events(run.run_id)][-1] == "stored"
