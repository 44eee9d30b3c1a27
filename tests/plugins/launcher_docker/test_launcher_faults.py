"""The docker launcher when things go wrong, on a real engine: a killed or OOM-killed container, a
missing image (pull policy never, a pull the engine cannot make, a registry that stalls), a missing
network, an engine that does not answer, a container that exits before the worker starts, and a daemon
killed mid-launch. Each run ends once, with a reason code and a message naming what failed, and no
container is left.

Needs: the Docker engine, image and PostgreSQL of conftest.py. Daemons and CLI commands are real
``runyard`` subprocesses (or a Daemon in this process where only its loops matter), run workers real
containers.
"""

from __future__ import annotations

import io
import socket
import threading
import time
import uuid

import pytest
from dockertest import containers_of, instance_label
from launchertest import (
    JOBS,
    DaemonProcess,
    cli,
    failure,
    go_file,
    outcomes,
    output_events,
    runyard_env,
    wait_no_container,
)

from runyard.daemon import Daemon
from runyard.launchers.base import LaunchError
from runyard.storage.records import RunStatus
from runyard.testing import wait_until
from runyard_launcher_docker import engine


def _run(home, job="quick", run_config=None):
    run, _ = home.create_run(home.write_defs(JOBS), job, run_config or {})
    return run


def _waiting_run(home):
    return _run(home, "waiting", {"ops": {"wait": {"config": {"go_file": str(go_file(home))}}}})


def _launch_fails(home, run, reason: str, bound: float = 5.0) -> LaunchError:
    """Submitting the run raises the launcher's LaunchError with ``reason`` within ``bound``
    seconds, and the run is FAILURE with that reason, with nothing left on the engine."""
    began = time.monotonic()
    with pytest.raises(LaunchError) as info:
        home.instance.submit_run(run)
    took = time.monotonic() - began
    assert took < bound, f"the launch took {took:.1f}s to fail"
    assert info.value.reason == reason, str(info.value)
    assert home.instance.get_run(run.run_id).status == RunStatus.FAILURE
    event = failure(home, run.run_id)
    assert event.data["reason"] == reason and "Traceback" not in event.data["error"]
    return info.value


# ---- a container that dies --------------------------------------------------------------------------------
def test_docker_kill_fails_the_run_as_killed_and_the_container_goes(make_home, docker_client):
    home = make_home()
    run = _waiting_run(home)
    daemon = DaemonProcess(home)
    try:
        home.instance.submit_run(run)
        wait_until(lambda: home.out_lines("waiting"), timeout=30, what="the op to start in its container")
        container = docker_client.containers.get(home.instance.get_run(run.run_id).launcher_info["container_id"])
        container.kill()
        killed = time.monotonic()
        final = home.wait_finished(run.run_id, timeout=10)
        took = time.monotonic() - killed
        wait_no_container(docker_client, home)
    finally:
        daemon.stop()
    assert final.status == RunStatus.FAILURE, home.describe(run.run_id)
    assert took < 10, f"the run ended {took:.1f}s after the kill"
    event = failure(home, run.run_id)
    assert event.data["reason"] == "killed"
    assert container.name in event.message and "killed" in event.message and "137" in event.message
    (tail,) = output_events(home, run.run_id)
    assert tail.data["container_id"] == container.id and tail.data["exit_code"] == 137
    assert outcomes(home, run.run_id) == ["RUN_FAILURE"]


def test_a_container_over_its_memory_limit_fails_the_run_as_oom_killed(make_home, docker_client):
    home = make_home(mem_limit="64m")
    run = _run(home, "hungry")
    with Daemon(home.instance):
        home.instance.submit_run(run)
        final = home.wait_finished(run.run_id, timeout=60)
        wait_no_container(docker_client, home)
    assert final.status == RunStatus.FAILURE, home.describe(run.run_id)
    assert home.out_lines("hogging") and not home.out_lines("held")  # killed in the op, not before
    event = failure(home, run.run_id)
    assert event.data["reason"] == "oom_killed" and event.data["oom_killed"] is True
    assert "64m" in event.message and "OOMKilled" in event.message
    (tail,) = output_events(home, run.run_id)
    assert tail.data["oom_killed"] is True


def test_a_container_that_exits_before_the_worker_starts_fails_with_its_output(make_home, docker_client,
                                                                                runyard_image):
    tag = f"runyard-test-broken-entrypoint:{uuid.uuid4().hex[:12]}"
    dockerfile = (f"FROM {runyard_image}\nLABEL org.runyard.test=test_launcher_faults\n"
                  'ENTRYPOINT ["sh", "-c", "echo broken entrypoint >&2; exit 3"]\n')
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    try:
        home = make_home(image=tag)
        run = _run(home)
        with Daemon(home.instance):
            home.instance.submit_run(run)
            final = home.wait_finished(run.run_id, timeout=30)
            wait_no_container(docker_client, home)
    finally:
        docker_client.images.remove(tag, force=True)
    assert final.status == RunStatus.FAILURE, home.describe(run.run_id)
    event = failure(home, run.run_id)
    assert event.data["reason"] == "exit_code" and event.data["exit_code"] == 3
    assert "exited with code 3" in event.message
    (tail,) = output_events(home, run.run_id)
    assert "broken entrypoint" in tail.message and tail.level == "ERROR"


# ---- launches the engine refuses --------------------------------------------------------------------------
def test_a_missing_image_with_image_pull_never_fails_at_once(make_home, docker_client):
    home = make_home(image="runyard-test-absent:never", image_pull="never")
    run = _run(home)
    error = _launch_fails(home, run, "image_not_found", bound=2)
    assert "runyard-test-absent:never" in str(error) and "image_pull: never" in str(error)
    assert containers_of(docker_client, home.instance) == []


def test_a_missing_image_the_engine_cannot_pull_fails_at_once(make_home, docker_client):
    home = make_home(image="runyard-test-absent/nothing:missing")  # image_pull: missing (the default)
    run = _run(home)
    error = _launch_fails(home, run, "image_not_found", bound=5)
    assert "runyard-test-absent/nothing:missing" in str(error) and "could not be pulled" in str(error)
    assert containers_of(docker_client, home.instance) == []


class StalledRegistry:
    """A registry address that accepts connections and never answers, as one behind a firewall
    that drops replies would; records what the engine opened and sees when it lets go."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.closed = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn):
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        self.closed += 1

    def close(self):
        self.server.close()
        for conn in self.connections:
            conn.close()


def test_a_pull_from_a_registry_that_never_answers_is_bounded(make_home, docker_client):
    """The engine waits ~25 s for such a registry and the SDK's pull waits without any timeout: the
    launch must give up after api_timeout_seconds, and the engine drop the pull."""
    registry = StalledRegistry()
    try:
        home = make_home(image=f"127.0.0.1:{registry.port}/runyard-test/nothing:stalled", api_timeout_seconds=2)
        run = _run(home)
        error = _launch_fails(home, run, "image_not_found", bound=6)
        assert f"127.0.0.1:{registry.port}/runyard-test/nothing:stalled" in str(error)
        assert registry.connections, "the engine never tried the registry"
        # No pull keeps going: the engine drops the pull once the launch closed its request. Its
        # attempt in flight ends at the engine's own timeout (~10 s); had the pull gone on, the
        # engine would then try the registry again (its plain-HTTP fallback, ~25 s in all).
        tried = len(registry.connections)
        wait_until(lambda: registry.closed == len(registry.connections), timeout=20, interval=0.2,
                   what="the engine to close its connections to the registry")
        time.sleep(1)
        assert len(registry.connections) == tried, "the engine went on trying the registry"
    finally:
        registry.close()
    assert containers_of(docker_client, home.instance) == []


def test_a_missing_network_fails_at_once_naming_it(make_home, docker_client):
    home = make_home(network="runyard-test-no-such-network")
    run = _run(home)
    error = _launch_fails(home, run, "network_not_found")
    assert "runyard-test-no-such-network" in str(error)
    assert containers_of(docker_client, home.instance) == []


def test_an_unreachable_engine_address_fails_naming_it(make_home):
    home = make_home(docker_host="tcp://127.0.0.1:1")
    run = _run(home)
    error = _launch_fails(home, run, "engine_unreachable")
    assert "tcp://127.0.0.1:1" in str(error) and "docker_host" in str(error)
    assert failure(home, run.run_id).data["docker_host"] == "tcp://127.0.0.1:1"


def test_a_daemon_whose_engine_does_not_answer_says_so_once(make_home):
    """Run monitoring reconciles on every pass: an engine that is down is one warning naming its
    address (and one line when it answers again), not a traceback every pass."""
    home = make_home(docker_host="tcp://127.0.0.1:1", poll=0.2)
    run = _run(home)
    _launch_fails(home, run, "engine_unreachable")
    daemon = DaemonProcess(home)
    try:
        wait_until(lambda: "tcp://127.0.0.1:1" in daemon.output(), timeout=30, what="the daemon's warning")
        time.sleep(1.5)  # several more monitoring passes
    finally:
        daemon.stop()
    output = daemon.output()
    assert "Traceback" not in output, output[-3000:]
    assert output.count("tcp://127.0.0.1:1") == 1, output[-3000:]


def test_job_launch_with_docker_host_unreachable_exits_with_one_message(make_home):
    home = make_home()
    defs = home.write_defs(JOBS)
    address = "unix:///nonexistent.sock"
    proc = cli(home, "job", "launch", "-j", "quick", "-f", defs, env=runyard_env(home, DOCKER_HOST=address))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert address in errors[0] and "DOCKER_HOST" in errors[0] and "Docker engine" in errors[0]
    (run,) = home.instance.storage.get_runs()
    assert run.status == RunStatus.FAILURE
    assert failure(home, run.run_id).data["reason"] == "engine_unreachable"


# ---- a daemon killed mid-launch ---------------------------------------------------------------------------
def test_a_daemon_killed_right_after_creating_the_container_runs_the_run_once(make_home, docker_client):
    home = make_home(queued=True, lease=2, relaunch_after_seconds=1)
    run = _run(home)
    events = docker_client.events(decode=True, until=int(time.time()) + 60,
                                  filters={"event": "create", "label": instance_label(home.instance)})
    daemon = DaemonProcess(home)
    restarted = None
    try:
        home.instance.submit_run(run)
        created = next(iter(events))  # blocks until the daemon's queue loop creates the container
        daemon.kill()
        events.close()
        assert created["Actor"]["Attributes"]["name"] == engine.run_container_name(run.run_id)
        restarted = DaemonProcess(home)
        final = home.wait_finished(run.run_id, timeout=60)
        wait_no_container(docker_client, home)
    finally:
        daemon.stop()
        if restarted is not None:
            restarted.stop()
    assert final.status in (RunStatus.SUCCESS, RunStatus.FAILURE)
    assert len(outcomes(home, run.run_id)) == 1, home.describe(run.run_id)
    assert len(home.out_lines("hello")) <= 1  # never two workers
    if final.status == RunStatus.SUCCESS:
        assert len(home.out_lines("hello")) == 1
        (tail,) = output_events(home, run.run_id)
        assert tail.data["exit_code"] == 0
