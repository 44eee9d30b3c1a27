"""The daemon's ``/metrics`` (``daemon.metrics_port``), scraped from real ``runyard daemon`` processes
and parsed with ``prometheus_client``'s own parser: runs by status, queue depth and age, launch
latency, step durations, heartbeats and leadership (a leader and a standby), reconciler removals;
off by default with nothing listening; a port in use or a bad value named by its key.

Needs: nothing beyond Python, SQLite and Linux's /proc; every daemon is a real process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runyard.testing import wait_until

QUEUED_INSTANCE = """
run_coordinator:
  queued:
    dequeue_interval_seconds: 0.2
    tag_concurrency_limits: [{key: hold, limit: 0}]   # a run tagged hold=... stays queued
daemon: {metrics_port: 0, heartbeat_interval_seconds: 0.5, lease_seconds: 2}
run_monitoring: {poll_interval_seconds: 0.5}
"""

# A run launcher of the test's own: the process launcher, whose reconciler reports one removed
# "worker" per finished run it has not reported yet (what the docker and k8s launchers report for
# their containers and Jobs), through the same ReconcileContext.record_removal call.
RECONCILING_LAUNCHER = """
from runyard.launchers.process import ProcessRunLauncher
from runyard.storage.records import FINISHED_STATUSES, RunFilter


class ReconcilingLauncher(ProcessRunLauncher):
    removed: set = set()

    def reconcile(self, context):
        done = []
        for run in context.instance.storage.get_runs(RunFilter(statuses=sorted(FINISHED_STATUSES))):
            if run.run_id not in self.removed:
                self.removed.add(run.run_id)
                context.record_removal("worker")
                done.append(f"removed the worker of run {run.run_id}")
        return done
"""


# ---- helpers ----------------------------------------------------------------------------------------
def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape: (sample name, its labels) -> value, parsed by prometheus_client."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def labelled(samples: dict, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name]


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process ``pid`` itself listens on (its socket inodes matched against
    /proc/net/tcp{,6} rows in state LISTEN)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for row in f:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _leader(cli) -> str | None:
    """The id of the daemon holding the lease, from ``runyard daemon status``."""
    return (cli.json("daemon", "status", "--json")["lease"] or {}).get("holder")


class DaemonProc:
    """A ``runyard daemon`` subprocess; ``metrics_url`` from its banner when it serves metrics."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: list[str] = []
        self.started = threading.Event()
        self.metrics_url: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"^\s+metrics: (http://\S+)", line)
            if m:
                self.metrics_url = m.group(1)
            if line.startswith(("  code location", "  no workspace")):
                self.started.set()  # the banner's last lines: the metrics line, if any, came before
        self.started.set()

    def await_start(self) -> DaemonProc:
        assert self.started.wait(60), "runyard daemon did not start"
        assert self.proc.poll() is None, f"runyard daemon exited:\n{''.join(self.lines)}{self.proc.stderr.read()}"
        return self

    def scrape(self) -> dict:
        assert self.metrics_url, f"no metrics line in the banner:\n{''.join(self.lines)}"
        return scrape(self.metrics_url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(timeout=30) == 0, self.proc.stderr.read()
            finally:
                if self.proc.poll() is None:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()


@pytest.fixture
def start_daemon(cli):
    started: list[DaemonProc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> DaemonProc:
        d = DaemonProc(cli.popen("daemon", *args, env=env, start_new_session=True))
        started.append(d)
        return d.await_start()

    yield start
    for d in started:
        if d.proc.poll() is None:
            os.killpg(d.proc.pid, signal.SIGKILL)
            d.proc.wait()


# ---- tests ------------------------------------------------------------------------------------------
def test_metrics_are_off_by_default_and_nothing_listens(cli, home, tiny_defs, start_daemon):
    (home / "runyard.yaml").write_text("run_coordinator: {queued: {}}\n")
    daemon = start_daemon("-f", str(tiny_defs))
    wait_until(lambda: (cli.json("daemon", "status", "--json")["lease"] or {}).get("holder"), timeout=30,
               what="the daemon to lead")
    assert daemon.metrics_url is None
    assert listening_ports(daemon.proc.pid) == set()
    daemon.stop()


def test_runs_queue_launch_latency_steps_and_heartbeats(cli, home, tiny_defs, start_daemon, instance):
    (home / "runyard.yaml").write_text(QUEUED_INSTANCE)
    daemon = start_daemon("-f", str(tiny_defs))
    before = wait_until(lambda: (s := daemon.scrape()) and value(s, "runyard_daemon_is_leader",
                                                                  daemon_id=_leader(cli)) == 1 and s,
                        timeout=30, what="the daemon to lead")
    assert value(before, "runyard_storage_up") == 1
    assert value(before, "runyard_launch_latency_seconds_count", launcher="process") == 0  # there from the start
    assert value(before, "runyard_runs", status="SUCCESS") == 0
    assert urllib.request.urlopen(daemon.metrics_url, timeout=30).status == 200

    cli.ok("job", "launch", "-f", tiny_defs, "-j", "tiny", "--wait", timeout=120)
    cli.ok("job", "launch", "-f", tiny_defs, "-j", "tiny", "--tag", "hold=yes")  # stays QUEUED

    def settled():
        s = daemon.scrape()
        loops = {d["loop"] for d in labelled(s, "runyard_daemon_heartbeat_age_seconds")}
        steps = value(s, "runyard_step_duration_seconds_count", job_name="tiny", status="SUCCESS")
        return s if steps and {"lease", "queue", "schedules", "sensors", "monitoring"} <= loops else None

    after = wait_until(settled, timeout=30, what="the finished run's steps to be observed, every loop's heartbeat")
    assert value(after, "runyard_runs", status="SUCCESS") == 1
    assert value(after, "runyard_runs", status="QUEUED") == 1
    assert value(after, "runyard_queue_depth") == 1
    assert value(after, "runyard_queue_oldest_age_seconds") >= 0
    assert value(after, "runyard_launch_latency_seconds_count", launcher="process") == 1
    assert value(after, "runyard_launch_latency_seconds_sum", launcher="process") > 0
    assert value(after, "runyard_step_duration_seconds_count", job_name="tiny", status="SUCCESS") == 1
    events = sum(len(instance.storage.get_events(r.run_id)) for r in instance.storage.get_runs())
    assert value(after, "runyard_events_written") >= events > 0  # ids are handed out in order, none deleted
    daemon_id = _leader(cli)
    loops = {d["loop"] for d in labelled(after, "runyard_daemon_heartbeat_age_seconds")}
    assert {"lease", "queue", "schedules", "sensors", "monitoring"} <= loops
    for loop in loops:
        assert value(after, "runyard_daemon_heartbeat_age_seconds", daemon_id=daemon_id, loop=loop) >= 0
    daemon.stop()


def test_a_standby_says_leader_0_until_it_takes_over(cli, home, tiny_defs, start_daemon):
    (home / "runyard.yaml").write_text(QUEUED_INSTANCE)
    first = start_daemon("-f", str(tiny_defs))
    wait_until(lambda: _leader(cli), timeout=30, what="a leader")
    second = start_daemon("-f", str(tiny_defs))
    assert first.metrics_url != second.metrics_url
    leader_id, = labelled(first.scrape(), "runyard_daemon_is_leader")
    standby_id, = labelled(second.scrape(), "runyard_daemon_is_leader")
    assert value(first.scrape(), "runyard_daemon_is_leader", **leader_id) == 1
    assert value(second.scrape(), "runyard_daemon_is_leader", **standby_id) == 0
    assert {d["loop"] for d in labelled(second.scrape(), "runyard_daemon_heartbeat_age_seconds")} == {"lease"}

    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    wait_until(lambda: value(second.scrape(), "runyard_daemon_is_leader", **standby_id) == 1, timeout=30,
               what="the standby to take over")
    second.stop()


def test_reconciler_removals_are_counted(cli, home, tiny_defs, start_daemon, tmp_path):
    (tmp_path / "metrics_launcher.py").write_text(RECONCILING_LAUNCHER)
    (home / "runyard.yaml").write_text(QUEUED_INSTANCE + "run_launcher: {module: metrics_launcher, "
                                       "class: ReconcilingLauncher}\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    daemon = start_daemon("-f", str(tiny_defs), env=env)
    cli.ok("job", "launch", "-f", tiny_defs, "-j", "tiny", "--wait", env=env, timeout=120)
    launcher = "metrics_launcher.ReconcilingLauncher"
    wait_until(lambda: value(daemon.scrape(), "runyard_reconciler_removed_total", launcher=launcher,
                             kind="worker") == 1, timeout=30, what="the removal to be counted")
    assert value(daemon.scrape(), "runyard_launch_latency_seconds_count", launcher=launcher) == 1
    daemon.stop()


def test_a_port_in_use_fails_the_start_naming_the_key(cli, home, tiny_defs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (home / "runyard.yaml").write_text(f"daemon:\n  metrics_port: {port}\n")
        proc = cli("daemon", "-f", tiny_defs, timeout=60)
    assert proc.returncode != 0
    assert "daemon.metrics_port" in proc.stderr and "in use" in proc.stderr, proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "line 2" in proc.stderr, proc.stderr
    assert cli.json("daemon", "status", "--json")["lease"] is None  # it never worked, and holds nothing


@pytest.mark.parametrize("text, expected", [
    ("daemon:\n  metrics_port: 70000\n", "less than or equal to 65535"),
    ("daemon:\n  metrics_port: nine\n", "integer"),
    ("daemon:\n  metrics_port: -1\n", "greater than or equal to 0"),
])
def test_a_bad_port_value_names_the_key_path(cli, home, text, expected):
    (home / "runyard.yaml").write_text(text)
    proc = cli("daemon")
    assert proc.returncode != 0
    assert "daemon.metrics_port" in proc.stderr and "line 2" in proc.stderr and expected in proc.stderr, proc.stderr


def test_a_host_this_machine_does_not_have_names_metrics_host(cli, home):
    (home / "runyard.yaml").write_text("daemon:\n  metrics_port: 0\n  metrics_host: 192.0.2.1\n")
    proc = cli("daemon")
    assert proc.returncode != 0
    assert "daemon.metrics_host" in proc.stderr and "192.0.2.1" in proc.stderr, proc.stderr


def test_paths_other_than_metrics_are_not_served(cli, home, start_daemon):
    (home / "runyard.yaml").write_text("daemon: {metrics_port: 0}\n")
    daemon = start_daemon()
    url = daemon.metrics_url
    base = url[: -len("/metrics")]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/", timeout=30)
    assert info.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=30)
    assert info.value.code == 405
    daemon.stop()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # closed with the daemon
