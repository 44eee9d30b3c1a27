"""``runyard docker containers|reconcile`` on a real engine: the instance's containers listed with
their run, kind and status; one reconciliation pass that stores a finished run's output and removes
its container, and finishes a run whose container was killed with the reason, which ``runyard run
show`` then prints; a clear refusal when the instance's launcher is not docker.

Needs: the Docker engine, image and PostgreSQL of conftest.py. The commands are real ``runyard``
subprocesses, run workers real containers.
"""

from __future__ import annotations

import json

from dockertest import containers_of
from launchertest import (
    JOBS,
    cli,
    go_file,
    output_events,
    wait_status,
)

from runyard.storage.records import RunStatus
from runyard.testing import SuiteHome, wait_until
from runyard_launcher_docker import engine


def ok(home, *args: str) -> str:
    proc = cli(home, *args)
    assert proc.returncode == 0, f"runyard {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def launched(home, job: str, run_config: dict | None = None) -> str:
    """Launch ``job`` from the CLI (the docker launcher starts its container); its run id."""
    defs = home.write_defs(JOBS)
    args = ["job", "launch", "-j", job, "-f", str(defs)]
    if run_config:
        path = home.root / "run_config.json"
        path.write_text(json.dumps(run_config))
        args += ["-c", str(path)]
    ok(home, *args)
    (run,) = home.instance.storage.get_runs()
    return run.run_id


def test_containers_lists_them_and_reconcile_removes_a_finished_runs_container(make_home, docker_client):
    home = make_home()
    run_id = launched(home, "quick")
    wait_status(home, run_id, RunStatus.SUCCESS)
    name = engine.run_container_name(run_id)

    listed = json.loads(ok(home, "docker", "containers", "--json"))
    assert listed == [{"name": name, "run_id": run_id, "kind": "run", "step_key": None, "status": "exited"}]
    text = ok(home, "docker", "containers")
    assert text.splitlines()[0].split() == ["NAME", "RUN", "ID", "KIND", "STATUS"]
    assert text.splitlines()[1].split() == [name, run_id, "run", "exited"]

    out = ok(home, "docker", "reconcile")
    assert f"removed container {name} of run {run_id} (SUCCESS)" in out
    assert "Reconciled: 1 action(s); 0 container(s) of this instance left." in out
    assert containers_of(docker_client, home.instance) == []
    assert len(output_events(home, run_id)) == 1  # its output was stored before removal
    assert ok(home, "docker", "containers") == "No containers.\n"
    assert ok(home, "docker", "reconcile") == "Reconciled: 0 action(s); 0 container(s) of this instance left.\n"


def test_reconcile_finishes_a_run_whose_container_was_killed_with_the_reason(make_home, docker_client):
    home = make_home()
    run_id = launched(home, "waiting", {"ops": {"wait": {"config": {"go_file": str(go_file(home))}}}})
    wait_until(lambda: home.out_lines("waiting"), timeout=60, what="the op to start in its container")
    docker_client.containers.get(engine.run_container_name(run_id)).kill()
    wait_until(lambda: docker_client.containers.get(engine.run_container_name(run_id)).status == "exited",
               timeout=15, what="the killed container to exit")

    out = ok(home, "docker", "reconcile")
    assert f"run {run_id}: its container ended, the run is dead" in out
    run = wait_status(home, run_id, RunStatus.FAILURE, timeout=5)
    shown = json.loads(ok(home, "run", "show", run.run_id, "--json"))
    assert shown["failure"]["reason"] == "killed", shown["failure"]
    assert f"Failure    killed: {shown['failure']['message']}" in ok(home, "run", "show", run_id)
    # the run has finished: the next pass stores the container's output and removes it
    assert f"removed container {engine.run_container_name(run_id)}" in ok(home, "docker", "reconcile")
    assert containers_of(docker_client, home.instance) == []


def test_both_refuse_an_instance_whose_launcher_is_not_docker(tmp_path):
    home = SuiteHome(tmp_path, {"run_launcher": {"process": {}}})
    try:
        for command in ("reconcile", "containers"):
            proc = cli(home, "docker", command)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert (f"runyard docker {command} needs the docker run launcher, but the instance's run launcher "
                    f"is 'process' (run_launcher in {home.instance_file})") in proc.stderr
    finally:
        home.close()
