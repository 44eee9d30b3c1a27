"""``runyard backfill launch|list|show|cancel|retry`` (docs/backfills.md): the work is in
:mod:`runyard.operations.backfills`; the daemon's leader creates the runs."""

from __future__ import annotations

from typing import Any

import click

from .common import echo_json, fmt_time, open_instance, parse_tags, styled_status
from .daemon_cmds import workspace_options
from .instigator_cmds import _locations

BACKFILL_STATUSES = ("REQUESTED", "COMPLETED", "CANCELING", "CANCELED", "FAILED")


@click.group()
def backfill() -> None:
    """Launch a run per partition of a partitioned job, and follow, cancel or retry it."""


def _json(bf, progress=None) -> dict[str, Any]:
    data = bf.to_dict()
    if progress is not None:
        data["progress"] = progress.to_dict()
    return data


def _progress_line(progress) -> str:
    runs = ", ".join(f"{n} {st}" for st, n in sorted(progress.runs.items(), key=lambda kv: kv[0].value))
    return f"{progress.submitted}/{progress.total} submitted" + (f" ({runs})" if runs else "")


@backfill.command("launch")
@click.argument("job_name")
@workspace_options
@click.option("--location", help="The code location of the job (needed when several have a job of that name).")
@click.option("--from", "start", metavar="KEY", help="First partition of a range (inclusive).")
@click.option("--to", "end", metavar="KEY", help="Last partition of a range (inclusive).")
@click.option("--partitions", metavar="A,B,C", help="These partitions (comma-separated), in this order.")
@click.option("--all", "all_partitions", is_flag=True, help="Every partition of the job.")
@click.option("--tag", "tags", multiple=True, help="Tag KEY=VALUE on every run (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def launch(job_name, python_files, workspace_file, location, start, end, partitions, all_partitions, tags, as_json):
    """Launch a backfill of JOB_NAME: one run per partition, queued by the daemon."""
    from ..operations import backfills as ops
    from ..tags import USER_TAG, os_user

    keys = [k.strip() for k in partitions.split(",") if k.strip()] if partitions is not None else None
    with _locations() as (instance, open_):
        loc, job = ops.find_partitioned_job(open_(python_files, workspace_file), job_name, location)
        selected = ops.select_partition_keys(job, partitions=keys, start=start, end=end,
                                             all_partitions=all_partitions)
        bf = ops.launch_backfill(instance, loc, job, selected, tags=parse_tags(tags),
                                 runyard_tags={USER_TAG: os_user()})
    if as_json:
        echo_json(_json(bf))
        return
    click.echo(f"Backfill {bf.backfill_id} of {bf.job_name} ({bf.num_partitions} partitions: "
               f"{bf.partition_keys[0]} .. {bf.partition_keys[-1]}) requested; the daemon queues its runs.")


@backfill.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(BACKFILL_STATUSES, case_sensitive=False),
              help="Only backfills in this status (repeatable).")
@click.option("--job", "job_name", help="Only backfills of this job.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="At most this many backfills, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_backfills(statuses, job_name, limit, as_json):
    """List backfills, newest first, with their progress."""
    from ..operations.backfills import backfill_progress
    from ..storage.records import BackfillStatus

    storage = open_instance().storage
    found = storage.get_backfills(statuses=[BackfillStatus(s.upper()) for s in statuses] or None,
                                  job_name=job_name, limit=limit)
    rows = [(bf, backfill_progress(storage, bf)) for bf in found]
    if as_json:
        echo_json([_json(bf, p) for bf, p in rows])
        return
    if not rows:
        click.echo("No backfills.")
        return
    click.echo(f"{'BACKFILL ID':20}  {'JOB':20}  {'STATUS':10}  {'CREATED':19}  PROGRESS")
    for bf, p in rows:
        status = str(bf.status)
        click.echo(f"{bf.backfill_id:20}  {bf.job_name[:20]:20}  {styled_status(status)}{' ' * (10 - len(status))}"
                   f"  {fmt_time(bf.created_at)}  {_progress_line(p)}")


@backfill.command("show")
@click.argument("backfill_id")
@click.option("--partitions", "per_partition", is_flag=True, help="Also each partition and its run's status.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(backfill_id, per_partition, as_json):
    """A backfill: its partitions, status and progress (its runs per status)."""
    from ..operations.backfills import backfill_progress, get_backfill, partition_runs

    storage = open_instance().storage
    bf = get_backfill(storage, backfill_id)
    progress = backfill_progress(storage, bf)
    runs = partition_runs(storage, bf) if per_partition else None
    if as_json:
        data = _json(bf, progress)
        if runs is not None:
            data["partitions"] = [{"partition_key": k, "run_id": r.run_id if r else None,
                                   "status": str(r.status) if r else None} for k, r in runs.items()]
        echo_json(data)
        return
    click.echo(f"Backfill {bf.backfill_id}: job {bf.job_name} of code location {bf.location}")
    click.echo(f"  status:     {styled_status(str(bf.status))}")
    click.echo(f"  partitions: {bf.num_partitions} ({bf.partition_keys[0]} .. {bf.partition_keys[-1]})")
    click.echo(f"  progress:   {_progress_line(progress)}")
    click.echo(f"  created:    {fmt_time(bf.created_at)}")
    if bf.retry_of:
        click.echo(f"  retry of:   {bf.retry_of}")
    if bf.tags:
        click.echo("  tags:       " + ", ".join(f"{k}={v}" for k, v in sorted(bf.tags.items())))
    if bf.error:
        click.echo(click.style(f"  error:      {bf.error}", fg="red"))
    for key, run in (runs or {}).items():
        click.echo(f"    {key:24}  {run.run_id if run else '-':32}  {styled_status(str(run.status)) if run else '-'}")


@backfill.command("cancel")
@click.argument("backfill_id")
def cancel(backfill_id):
    """Cancel a backfill: no more runs are created and its queued runs are canceled."""
    from ..operations.backfills import backfill_progress, cancel_backfill

    instance = open_instance()
    bf = cancel_backfill(instance, backfill_id)
    click.echo(f"Backfill {bf.backfill_id} is {bf.status}: {_progress_line(backfill_progress(instance.storage, bf))}.")


@backfill.command("retry")
@click.argument("backfill_id")
@workspace_options
@click.option("--tag", "tags", multiple=True, help="Tag KEY=VALUE on every run (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def retry(backfill_id, python_files, workspace_file, tags, as_json):
    """A new backfill of the partitions whose run failed or was canceled in BACKFILL_ID."""
    from ..operations.backfills import retry_backfill
    from ..tags import USER_TAG, os_user

    with _locations() as (instance, open_):
        bf = retry_backfill(instance, open_(python_files, workspace_file), backfill_id, tags=parse_tags(tags),
                            runyard_tags={USER_TAG: os_user()})
    if as_json:
        echo_json(_json(bf))
        return
    click.echo(f"Backfill {bf.backfill_id} retries {bf.num_partitions} partition(s) of {bf.job_name} "
               f"from backfill {backfill_id}.")
