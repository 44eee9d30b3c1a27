"""``runyard k8s reconcile|jobs``: the k8s launcher's housekeeping by hand.

Run monitoring in the daemon reconciles on every pass. A setup without a daemon (runs launched from
the CLI or a web UI with the ``default`` coordinator) can run one pass from cron or by hand, and
list what the instance has in the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance

    from .launcher import K8sRunLauncher


@click.group()
def k8s() -> None:
    """The k8s launcher's Jobs: list them, clean up after finished runs."""


def k8s_launcher(instance: Instance, command: str) -> K8sRunLauncher:
    """The instance's run launcher, refused unless it is the k8s launcher."""
    from runyard.cli.common import require_launcher

    from .launcher import K8sRunLauncher

    return require_launcher(instance, K8sRunLauncher, "k8s", command)


@k8s.command("reconcile")
def reconcile() -> None:
    """Run one reconciliation pass, as the daemon's run monitoring does on every pass: store the log
    of the failed pods of finished (or unknown) runs and delete their Jobs, and finish runs whose Job
    failed. Prints one line per action."""
    from runyard.cli.common import open_instance
    from runyard.launchers.base import ReconcileContext
    from runyard.storage.records import IN_PROGRESS_STATUSES, RunFilter

    instance = open_instance()
    try:
        launcher = k8s_launcher(instance, "reconcile")
        runs = instance.storage.get_runs(RunFilter(statuses=list(IN_PROGRESS_STATUSES)))
        done = launcher.reconcile(ReconcileContext(instance=instance, runs=runs, extra={"watch": False}))
        for line in done:
            click.echo(line)
        left = len(launcher.instance_jobs(instance))
        click.echo(f"Reconciled: {len(done)} action(s); {left} Job(s) of this instance left.")
    finally:
        instance.dispose()


@k8s.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def jobs_command(as_json: bool) -> None:
    """List the instance's Jobs in the cluster: run workers and step Jobs."""
    from runyard.cli.common import echo_json, open_instance

    from . import manifests

    instance = open_instance()
    try:
        found = k8s_launcher(instance, "jobs").instance_jobs(instance)
    finally:
        instance.dispose()
    rows = []
    for job in found:
        meta, status = job["metadata"], job.get("status") or {}
        state = ("succeeded" if status.get("succeeded") else "failed" if status.get("failed")
                 else "active" if status.get("active") else "pending")
        rows.append({"name": meta["name"], "namespace": meta["namespace"],
                     "run_id": (meta.get("annotations") or {}).get(manifests.PREFIX + "run-id", ""),
                     "kind": (meta.get("labels") or {}).get(manifests.KIND_LABEL, ""),
                     "step_key": (meta.get("annotations") or {}).get(manifests.STEP_ANNOTATION), "status": state})
    rows.sort(key=lambda r: (r["run_id"], r["name"]))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No Jobs.")
        return
    click.echo(f"{'NAME':48}  {'RUN ID':32}  {'KIND':4}  STATUS")
    for r in rows:
        click.echo(f"{r['name']:48}  {r['run_id']:32}  {r['kind']:4}  {r['status']}")
