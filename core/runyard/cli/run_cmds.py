"""``runyard run list|show|logs|terminate|delete|health`` and ``runyard execute-run``."""

from __future__ import annotations

import sys

import click

from .common import echo_json, fmt_duration, fmt_time, format_event, open_instance, styled_status

STATUSES = ["NOT_STARTED", "QUEUED", "STARTING", "STARTED", "CANCELING", "SUCCESS", "FAILURE", "CANCELED"]


@click.group()
def run() -> None:
    """Inspect and manage runs stored in the instance."""


def run_json(r) -> dict:
    data = r.to_dict()
    data["duration"] = r.duration
    return data


@run.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES, case_sensitive=False),
              help="Only runs in this status (repeatable).")
@click.option("--job", "job_name", help="Only runs of this job.")
@click.option("--tag", "tags", multiple=True, help="Only runs with tag KEY=VALUE (repeatable).")
@click.option("--limit", default=50, show_default=True, help="At most this many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_runs(statuses, job_name, tags, limit, as_json):
    """List runs, newest first."""
    from ..storage.records import RunFilter, RunStatus
    from .common import parse_tags

    instance = open_instance()
    filters = RunFilter(statuses=[RunStatus(s.upper()) for s in statuses] or None, job_name=job_name,
                        tags=parse_tags(tags) or None)
    runs = instance.storage.get_runs(filters, limit=limit)
    if as_json:
        echo_json([run_json(r) for r in runs])
        return
    if not runs:
        click.echo("No runs.")
        return
    click.echo(f"{'RUN ID':32}  {'JOB':20}  {'STATUS':11}  {'CREATED':19}  DURATION")
    for r in runs:
        status = str(r.status)
        click.echo(f"{r.run_id:32}  {r.job_name[:20]:20}  {styled_status(status)}{' ' * (11 - len(status))}"
                   f"  {fmt_time(r.created_at)}  {fmt_duration(r.duration)}")


@run.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(run_id, as_json):
    """Show one run: status, config, tags, and each step's outcome."""
    instance = open_instance()
    r = instance.get_run(run_id)
    steps = step_summary(instance, run_id)
    if as_json:
        echo_json({**run_json(r), "steps": steps})
        return
    click.echo(f"Run        {r.run_id}")
    click.echo(f"Job        {r.job_name}")
    click.echo(f"Status     {styled_status(str(r.status))}")
    click.echo(f"Created    {fmt_time(r.created_at)}")
    click.echo(f"Started    {fmt_time(r.start_time)}")
    click.echo(f"Ended      {fmt_time(r.end_time)}")
    click.echo(f"Duration   {fmt_duration(r.duration)}")
    click.echo(f"Code       {r.code_pointer.describe()}")
    if r.tags:
        click.echo("Tags       " + ", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())))
    if r.launcher_info:
        click.echo("Worker     " + ", ".join(f"{k}={v}" for k, v in sorted(r.launcher_info.items())))
    if r.run_config:
        import yaml

        click.echo("Run config\n" + "\n".join("  " + ln for ln in
                                               yaml.safe_dump(r.run_config, sort_keys=True).splitlines()))
    if steps:
        click.echo("Steps")
        for s in steps:
            click.echo(f"  {s['step_key']:30} {styled_status(s['status'])}"
                       f"{' ' * (9 - len(s['status']))} attempts={s['attempts']} "
                       f"{fmt_duration(s['duration'])}" + (f"  {s['error']}" if s.get("error") else ""))


def step_summary(instance, run_id: str) -> list[dict]:
    """Each step's final status, attempts, duration and error (counted by storage)."""
    return [st.to_dict() for st in instance.storage.get_step_stats(run_id)]


@run.command("logs")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Events as JSON, one object per line.")
@click.option("-v", "--verbose", is_flag=True, help="Include DEBUG events.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until the run finishes.")
def logs(run_id, as_json, verbose, follow):
    """Print a run's event log."""
    instance = open_instance()
    instance.get_run(run_id)
    if follow and not as_json:
        from .job_cmds import follow_run

        follow_run(instance, run_id, verbose=verbose)
        return
    for e in instance.storage.get_events(run_id):
        if as_json:
            import json

            click.echo(json.dumps(e.to_dict(), sort_keys=True, default=str))
        elif verbose or e.level != "DEBUG":
            click.echo(format_event(e))


@run.command("terminate")
@click.argument("run_id")
def terminate(run_id):
    """Stop a run: cancel it if it has not started, else signal its worker (SIGTERM, then SIGKILL)."""
    instance = open_instance()
    signalled = instance.terminate_run(run_id)
    instance.check_run_health(run_id)
    r = instance.get_run(run_id)
    if not signalled and str(r.status) not in ("CANCELED", "FAILURE", "SUCCESS"):
        click.echo(f"Run {run_id} is {r.status}; its worker could not be found.", err=True)
        sys.exit(1)
    click.echo(f"Run {run_id} is {styled_status(str(r.status))}.")


@run.command("delete")
@click.argument("run_id")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(run_id, yes):
    """Delete a finished run and its events."""
    instance = open_instance()
    instance.get_run(run_id)
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete run {run_id} and all its events?", abort=True)
    instance.delete_run(run_id)
    click.echo(f"Deleted run {run_id}.")


@run.command("health")
@click.argument("run_ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
def health(run_ids, as_json):
    """Check the workers of in-progress runs; runs whose worker died are marked FAILURE."""
    from ..storage.records import IN_PROGRESS_STATUSES, RunFilter

    instance = open_instance()
    if not run_ids:
        run_ids = [r.run_id for r in instance.storage.get_runs(RunFilter(statuses=list(IN_PROGRESS_STATUSES)))]
    results = {rid: instance.check_run_health(rid) for rid in run_ids}
    if as_json:
        echo_json(results)
    else:
        for rid, verdict in results.items():
            click.echo(f"{rid}  {verdict}")
        if not results:
            click.echo("No runs in progress.")


@click.command("execute-run")
@click.argument("run_id")
def execute_run(run_id):
    """Run worker: execute one stored run (launchers start this; the instance comes from the
    environment, RUNYARD_HOME / RUNYARD_INSTANCE_FILE)."""
    from ..execution.worker_main import run_worker_main

    sys.exit(run_worker_main(run_id))
