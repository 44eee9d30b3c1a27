"""The docker launcher on a real engine: runs launched from the CLI and from the daemon's queue end
SUCCESS in their containers, run monitoring stores each finished container's output and removes it,
terminate leaves nothing, an interrupted or doubled launch runs the run once, SQLite homes work
through the home mount, secrets reach the worker only through its environment, and per-run override
tags are applied only where the operator allows them; the daemon's queue launches several runs at
once through it (``supports_concurrent_launch``).

Needs: the Docker engine, image and PostgreSQL of conftest.py. Daemons and CLI commands are real
``runyard`` subprocesses, run workers real containers.
"""

from __future__ import annotations

import threading
import time

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
    wait_no_container,
    wait_status,
)

from runyard.launchers.base import LaunchError, LaunchRunContext
from runyard.storage.records import RunStatus
from runyard.testing import wait_until
from runyard_launcher_docker import engine, exits


def _quick_run(home, job="quick", run_config=None, tags=None):
    run, _ = home.create_run(home.write_defs(JOBS), job, run_config or {})
    if tags:
        home.instance.storage.update_run(run.run_id, tags={**run.tags, **tags})
    return home.instance.get_run(run.run_id)


def test_cli_launch_succeeds_and_the_daemon_removes_the_container_after_storing_its_output(make_home,
                                                                                            docker_client):
    home = make_home()
    defs = home.write_defs(JOBS)
    proc = cli(home, "job", "launch", "-j", "quick", "-f", defs)
    assert proc.returncode == 0, proc.stderr
    (run,) = home.instance.storage.get_runs()
    run = wait_status(home, run.run_id, RunStatus.SUCCESS)
    assert run.launcher_info["container_name"] == engine.run_container_name(run.run_id)
    (container,) = containers_of(docker_client, home.instance)
    assert container.id == run.launcher_info["container_id"]
    assert output_events(home, run.run_id) == []  # nobody reconciled yet: the container waits
    daemon = DaemonProcess(home)
    try:
        wait_no_container(docker_client, home)
    finally:
        daemon.stop()
    (tail,) = output_events(home, run.run_id)
    assert f"run {run.run_id} finished: SUCCESS" in tail.message  # the worker's own output
    assert tail.data["container_id"] == container.id and tail.data["exit_code"] == 0 and tail.level == "INFO"
    assert outcomes(home, run.run_id) == ["RUN_SUCCESS"]


def test_a_queued_run_is_launched_by_the_daemon_and_its_container_removed(make_home, docker_client):
    home = make_home(queued=True)
    run = _quick_run(home)
    assert home.instance.submit_run(run).status == RunStatus.QUEUED
    destroyed = docker_client.events(decode=True, until=int(time.time()) + 60,
                                     filters={"event": "destroy", "label": instance_label(home.instance)})
    daemon = DaemonProcess(home)
    try:
        wait_status(home, run.run_id, RunStatus.SUCCESS)
        wait_no_container(docker_client, home)
        removal = next(iter(destroyed))
        destroyed.close()
    finally:
        daemon.stop()
    (tail,) = output_events(home, run.run_id)
    assert tail.timestamp <= removal["timeNano"] / 1e9  # the output is stored first, then the container removed
    assert f"run {run.run_id} finished: SUCCESS" in tail.message  # the worker's own output
    assert home.instance.get_run(run.run_id).launcher_info["container_id"] == tail.data["container_id"]
    assert tail.data["exit_code"] == 0  # the worker exited on its own; nobody stopped it
    assert outcomes(home, run.run_id) == ["RUN_SUCCESS"]


def test_terminate_mid_run_ends_canceled_and_removes_the_container(make_home, docker_client):
    home = make_home()
    run = _quick_run(home, "waiting", {"ops": {"wait": {"config": {"go_file": str(go_file(home))}}}})
    home.instance.submit_run(run)
    wait_until(lambda: home.out_lines("waiting"), timeout=30, what="the op to start in its container")
    assert home.instance.terminate_run(run.run_id) is True
    wait_status(home, run.run_id, RunStatus.CANCELED, timeout=15)
    assert containers_of(docker_client, home.instance) == []
    assert len(output_events(home, run.run_id)) == 1


def test_a_created_but_never_started_container_is_started_once_by_run_monitoring(make_home, docker_client):
    """The launching process died between create and start: the run is STARTING, its container
    exists, launcher_info is empty. Run monitoring starts that container (no second one)."""
    from runyard.daemon import Daemon

    home = make_home(relaunch_after_seconds=0.5)
    inst = home.instance
    run = _quick_run(home)
    assert inst.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTING, "Launching (test).")
    launcher = inst.run_launcher
    client = engine.client_for(launcher.config)
    name = engine.run_container_name(run.run_id)
    kwargs = engine.create_kwargs(inst, launcher.config, image=launcher.config.image, name=name,
                                  command=["runyard", "execute-run", run.run_id],
                                  labels=engine.base_labels(inst, run, "run", {}))
    created, fresh = engine.create_container(client, kwargs, [])
    assert fresh and exits.state_of(created).status == "created"
    with Daemon(inst):
        wait_status(home, run.run_id, RunStatus.SUCCESS)
        wait_no_container(docker_client, home)
    assert outcomes(home, run.run_id) == ["RUN_SUCCESS"]
    assert inst.get_run(run.run_id).launcher_info["container_id"] == created.id
    assert [e.data.get("reason") for e in home.events(run.run_id, "ENGINE_EVENT")].count("relaunched") == 1


def test_a_doubled_launch_leaves_one_container_and_one_outcome(make_home, docker_client):
    home = make_home()
    inst = home.instance
    run = _quick_run(home, "waiting", {"ops": {"wait": {"config": {"go_file": str(go_file(home))}}}})
    inst.launch_run(run)
    first = inst.get_run(run.run_id).launcher_info["container_id"]
    inst.run_launcher.launch_run(LaunchRunContext(instance=inst, run=inst.get_run(run.run_id)))
    assert [c.id for c in containers_of(docker_client, inst)] == [first]
    go_file(home).write_text("")
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    assert inst.get_run(run.run_id).launcher_info["container_id"] == first
    assert outcomes(home, run.run_id) == ["RUN_SUCCESS"]
    assert len(home.out_lines("waiting")) == 1  # one worker ran the op


def test_sqlite_home_runs_through_the_home_mount(make_home, docker_client):
    home = make_home(storage=None)
    assert engine.is_sqlite(home.instance)
    run = _quick_run(home)
    home.instance.submit_run(run)
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    (container,) = containers_of(docker_client, home.instance)
    mounts = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]}
    assert mounts[str(home.home)] == str(home.home)


def test_sqlite_without_the_home_mount_is_refused(make_home, docker_client):
    home = make_home(storage=None, mount_home=False)
    run = _quick_run(home)
    with pytest.raises(LaunchError) as info:
        home.instance.submit_run(run)
    assert info.value.reason == "storage_unreachable"
    assert "SQLite" in str(info.value) and "mount_home" in str(info.value)
    assert failure(home, run.run_id).data["reason"] == "storage_unreachable"
    assert containers_of(docker_client, home.instance) == []


SECRET = "s3cret-Pw-41x"


@pytest.fixture
def secret_role(pg_url, pg_admin_url):
    """A login role with a password, owning the test's database (dropped at the end)."""
    import psycopg2

    role = f"runyard_secret_{int(time.time() * 1000) % 10**9}"
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    database = pg_url.rsplit("/", 1)[1].split("?")[0]
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (SECRET,))
        cur.execute(f"ALTER DATABASE {database} OWNER TO {role}")  # so it may create the schema
    yield role, database
    owned = psycopg2.connect(pg_url)  # what the role owns is per database: give it back there
    owned.autocommit = True
    with owned.cursor() as cur:
        cur.execute(f"REASSIGN OWNED BY {role} TO postgres")
        cur.execute(f"DROP OWNED BY {role}")
    owned.close()
    with admin.cursor() as cur:
        cur.execute(f"DROP ROLE {role}")
    admin.close()


def test_a_storage_password_reaches_the_worker_only_in_its_environment(secret_role, make_home, docker_client,
                                                                       monkeypatch):
    # secret_role first: torn down after the home has closed its connections as the role
    role, database = secret_role
    monkeypatch.setenv("RUNYARD_TEST_PG_PASSWORD", SECRET)
    home = make_home(storage={"postgres": {"host": "127.0.0.1", "port": 5432, "user": role, "database": database,
                                           "password": {"env": "RUNYARD_TEST_PG_PASSWORD"}}})
    run = _quick_run(home)
    home.instance.submit_run(run)
    run = wait_status(home, run.run_id, RunStatus.SUCCESS)
    (container,) = containers_of(docker_client, home.instance)
    config = container.attrs["Config"]
    assert SECRET not in " ".join(config.get("Cmd") or []) + " ".join(container.attrs.get("Args") or [])
    assert SECRET not in " ".join(f"{k}={v}" for k, v in (config.get("Labels") or {}).items())
    assert SECRET not in repr(run.launcher_info)
    env = config["Env"]
    (yaml_text,) = [e for e in env if e.startswith("RUNYARD_INSTANCE_YAML=")]
    assert "RUNYARD_TEST_PG_PASSWORD" in yaml_text  # the reference, unresolved
    assert [e for e in env if SECRET in e] == [f"RUNYARD_TEST_PG_PASSWORD={SECRET}"]


def test_an_allowed_override_tag_applies(make_home, docker_client):
    home = make_home(run_overrides=["mem_limit"], mem_limit="512m")
    run = _quick_run(home, tags={"docker/mem_limit": "200m"})
    home.instance.submit_run(run)
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    (container,) = containers_of(docker_client, home.instance)
    assert container.attrs["HostConfig"]["Memory"] == 200 * 1024 * 1024


def test_an_override_tag_the_operator_did_not_allow_fails_the_run(make_home, docker_client):
    home = make_home(run_overrides=["mem_limit"])
    run = _quick_run(home, tags={"docker/image": "busybox:latest"})
    with pytest.raises(LaunchError):
        home.instance.submit_run(run)
    event = failure(home, run.run_id)
    assert event.data["reason"] == "override_not_allowed"
    assert "docker/image" in event.message and "run_overrides" in event.message
    assert home.instance.get_run(run.run_id).status == RunStatus.FAILURE
    assert containers_of(docker_client, home.instance) == []


def test_the_daemon_launches_queued_runs_concurrently_on_the_engine(make_home, docker_client, monkeypatch):
    from runyard.daemon import Daemon

    home = make_home(queued=True)
    runs = [_quick_run(home) for _ in range(10)]
    for run in runs:
        assert home.instance.submit_run(run).status == RunStatus.QUEUED
    lock, counts = threading.Lock(), {"now": 0, "peak": 0}
    create = engine.create_container

    def counting_create(*args, **kwargs):  # the engine round trips of one launch, counted in flight
        with lock:
            counts["now"] += 1
            counts["peak"] = max(counts["peak"], counts["now"])
        try:
            time.sleep(0.1)  # an engine farther away than this machine's socket
            return create(*args, **kwargs)
        finally:
            with lock:
                counts["now"] -= 1

    monkeypatch.setattr(engine, "create_container", counting_create)
    daemon = Daemon(home.instance)
    assert daemon.lease.tick()
    try:
        launched = daemon.dequeue()  # launch_concurrency defaults to 8; the docker launcher allows it
    finally:
        daemon.stop()
    assert sorted(r.run_id for r in launched) == sorted(r.run_id for r in runs)
    assert 1 < counts["peak"] <= 8
    ids = {home.instance.get_run(r.run_id).launcher_info["container_id"] for r in runs}
    assert len(ids) == len(runs)  # one container per run, none shared or lost
    for run in runs:
        wait_status(home, run.run_id, RunStatus.SUCCESS, timeout=120)
