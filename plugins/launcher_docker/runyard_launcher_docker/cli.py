"""``runyard docker reconcile|containers``: the docker launcher's housekeeping by hand.

Run monitoring in the daemon reconciles on every pass. A setup without a daemon (runs launched from
the CLI or a web UI with the ``default`` coordinator) can run one pass from cron or by hand, and
list what the instance has on the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance

    from .launcher import DockerRunLauncher


@click.group()
def docker() -> None:
    """The docker launcher's containers: list them, clean up after finished runs."""


def docker_launcher(instance: Instance, command: str) -> DockerRunLauncher:
    """The instance's run launcher, refused unless it is the docker launcher."""
    from runyard.cli.common import require_launcher

    from .launcher import DockerRunLauncher

    return require_launcher(instance, DockerRunLauncher, "docker", command)


@docker.command("reconcile")
def reconcile() -> None:
    """Run one reconciliation pass, as the daemon's run monitoring does on every pass: store the
    output of the containers of finished (or unknown) runs and remove them, and finish runs whose
    container ended. Prints one line per action."""
    from runyard.cli.common import open_instance
    from runyard.launchers.base import ReconcileContext
    from runyard.storage.records import IN_PROGRESS_STATUSES, RunFilter

    instance = open_instance()
    try:
        launcher = docker_launcher(instance, "reconcile")
        runs = instance.storage.get_runs(RunFilter(statuses=list(IN_PROGRESS_STATUSES)))
        done = launcher.reconcile(ReconcileContext(instance=instance, runs=runs))
        for line in done:
            click.echo(line)
        left = len(launcher.containers(instance))
        click.echo(f"Reconciled: {len(done)} action(s); {left} container(s) of this instance left.")
    finally:
        instance.dispose()


@docker.command("containers")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def containers(as_json: bool) -> None:
    """List the instance's containers on the engine: run workers and step containers."""
    from runyard.cli.common import echo_json, open_instance

    from . import engine, exits

    instance = open_instance()
    try:
        found = docker_launcher(instance, "containers").containers(instance)
    finally:
        instance.dispose()
    rows = sorted(({"name": c.name, "run_id": c.labels.get(engine.RUN_LABEL, ""),
                    "kind": c.labels.get(engine.KIND_LABEL, ""), "step_key": c.labels.get(engine.STEP_LABEL),
                    "status": exits.state_of(c).status} for c in found), key=lambda r: (r["run_id"], r["name"]))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No containers.")
        return
    click.echo(f"{'NAME':48}  {'RUN ID':32}  {'KIND':4}  STATUS")
    for r in rows:
        click.echo(f"{r['name']:48}  {r['run_id']:32}  {r['kind']:4}  {r['status']}")
