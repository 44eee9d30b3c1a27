"""``runyard run list|show|logs|terminate|delete|health`` and ``runyard execute-run``."""

from __future__ import annotations

import sys

import click

from ..storage.records import FINISHED_STATUSES, RunStatus
from .common import RUN_ID, echo_json, fmt_duration, fmt_time, format_event, open_instance, styled_status

STATUSES = [s.value for s in RunStatus]


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
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1_000_000),
              help="At most this many runs, newest first.")
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
@click.argument("run_id", type=RUN_ID)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(run_id, as_json):
    """Show one run: status, why it failed (when its launcher or run monitoring said), config, tags,
    and each step's outcome."""
    from ..daemon.retries import retry_run_id
    from ..operations.failure import run_failure
    from ..tags import RETRY_NUMBER_TAG

    instance = open_instance()
    r = instance.get_run(run_id)
    steps = step_summary(instance, run_id)
    failure = run_failure(instance.storage, r)
    # a failed run's retry, if the daemon made one (its id is derived from the failed run's)
    retry = instance.storage.get_run(retry_run_id(r.run_id)) if r.status == RunStatus.FAILURE else None
    if as_json:
        echo_json({**run_json(r), "steps": steps, "failure": failure.to_dict() if failure else None,
                   "retried_as": retry.run_id if retry else None})
        return
    click.echo(f"Run        {r.run_id}")
    click.echo(f"Job        {r.job_name}")
    click.echo(f"Status     {styled_status(str(r.status))}")
    click.echo(f"Created    {fmt_time(r.created_at)}")
    click.echo(f"Started    {fmt_time(r.start_time)}")
    click.echo(f"Ended      {fmt_time(r.end_time)}")
    click.echo(f"Duration   {fmt_duration(r.duration)}")
    if failure:
        click.echo(f"Failure    {failure.reason}: {failure.message}")
    click.echo(f"Code       {r.code_pointer.describe()}")
    if r.parent_run_id:
        click.echo(f"Parent     {r.parent_run_id} (root {r.root_run_id or r.parent_run_id})")
    if r.tags.get(RETRY_NUMBER_TAG):
        click.echo(f"Retry      attempt {r.tags[RETRY_NUMBER_TAG]}, made by the daemon (run_retries)")
    if retry is not None:
        click.echo(f"Retried as {retry.run_id} ({retry.status})")
    if r.step_keys_to_execute is not None:
        click.echo(f"Selected   {', '.join(r.step_keys_to_execute)}")
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
@click.argument("run_id", type=RUN_ID)
@click.option("--step", "step_key", metavar="KEY",
              help="Print the captured stdout of this step (its compute log) instead of the event log.")
@click.option("--stderr", is_flag=True, help="With --step: the step's stderr instead of its stdout.")
@click.option("--json", "as_json", is_flag=True, help="Events as JSON, one object per line.")
@click.option("-v", "--verbose", is_flag=True, help="Include DEBUG events.")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new events until the run finishes; with --step, new output until the "
                   "step finishes.")
def logs(run_id, step_key, stderr, as_json, verbose, follow):
    """Print a run's event log, or with --step the captured output of one step."""
    instance = open_instance()
    instance.get_run(run_id)
    if step_key is None:
        if stderr:
            raise click.UsageError("--stderr needs --step KEY")
    else:
        if as_json:
            raise click.UsageError("--json is for the event log; it cannot be combined with --step")
        _print_step_logs(instance, run_id, step_key, "stderr" if stderr else "stdout", follow)
        return
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


def _print_step_logs(instance, run_id: str, step_key: str, stream: str, follow: bool,
                     poll: float = 0.1, health_every: float = 1.0) -> None:
    """``run logs --step``: copy the step's compute log file to stdout, then (``--follow``) what is
    appended to it until the step's last attempt ends or the run finishes."""
    import time

    from ..errors import RunyardError
    from ..execution import compute_logs as cl

    storage = instance.storage
    captured = cl.captured_steps(storage, run_id)
    if step_key not in captured:
        if captured:
            detail = "steps with captured logs: " + ", ".join(captured)
        elif instance.compute_log_manager is None:
            detail = "no step's output was captured; compute logs are turned off in this instance " \
                     "(compute_logs: {enabled: false})"
        else:
            detail = "no step of this run has captured logs yet"
        raise RunyardError(f"No compute logs for step '{step_key}' in run {run_id}; {detail}.")
    out = click.get_binary_stream("stdout")
    offset = 0

    def copy() -> None:
        nonlocal offset
        while True:
            chunk = cl.read_chunk(cl.step_log_files(captured[step_key]).path(stream), offset)
            if not chunk:
                break
            offset += len(chunk)
            out.write(chunk)
        out.flush()

    copy()
    if not follow:
        return
    last_health = time.monotonic()
    while True:
        done = instance.get_run(run_id).status in FINISHED_STATUSES
        captured = cl.captured_steps(storage, run_id)  # a retry may start a new attempt
        done = done or cl.step_finished(storage, run_id, step_key, captured[step_key].id)
        copy()
        if done:
            return
        if time.monotonic() - last_health >= health_every:
            last_health = time.monotonic()
            instance.check_run_health(run_id)
        time.sleep(poll)


@run.command("terminate")
@click.argument("run_id", type=RUN_ID)
def terminate(run_id):
    """Stop a run: cancel it if it has not started, else signal its worker (SIGTERM, then SIGKILL)."""
    instance = open_instance()
    signalled = instance.terminate_run(run_id)
    instance.check_run_health(run_id)
    r = instance.get_run(run_id)
    if not signalled and r.status not in FINISHED_STATUSES:
        click.echo(f"Run {run_id} is {r.status}; its worker could not be found.", err=True)
        sys.exit(1)
    click.echo(f"Run {run_id} is {styled_status(str(r.status))}.")


@run.command("delete")
@click.argument("run_id", type=RUN_ID)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--keep-files", is_flag=True, help="Keep the run's worker log, captured step output and "
              "stored outputs under the home.")
def delete(run_id, yes, keep_files):
    """Delete a finished run, its events and the files runyard wrote for it."""
    from ..operations.delete import delete_run

    instance = open_instance()
    instance.get_run(run_id)
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete run {run_id} and all its events?", abort=True)
    delete_run(instance, run_id, files=not keep_files)
    click.echo(f"Deleted run {run_id}.")


@run.command("health")
@click.argument("run_ids", nargs=-1, type=RUN_ID)
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


@run.command("reexecute")
@click.argument("run_id", type=RUN_ID)
@click.option("--from-failure", "from_failure", is_flag=True,
              help="Only the steps that did not succeed in the run, and everything downstream of them.")
@click.option("--all-steps", "all_steps", is_flag=True, help="Every step of the job (the default).")
@click.option("--ops", "ops", metavar="SELECTION",
              help="Only these ops (same grammar as `job execute --ops`); the others reuse stored outputs.")
@click.option("--tag", "tags", multiple=True, help="Extra run tag KEY=VALUE (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="With --wait: show every event, DEBUG ones included.")
@click.option("--wait/--no-wait", default=False, help="Follow the new run's events until it finishes.")
def reexecute(run_id, from_failure, all_steps, ops, tags, verbose, wait):
    """Re-execute a finished run as a new run of the same job, run config and code, linked to it.

    Steps that are not executed again reuse the outputs stored by the run (or its own parents)."""
    from ..operations.reexecute import reexecute_from_definitions
    from .common import parse_tags
    from .job_cmds import _summary, follow_run

    chosen = [name for name, on in (("--from-failure", from_failure), ("--all-steps", all_steps),
                                    ("--ops", ops is not None)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined: choose what to re-execute "
                               "with one of --all-steps, --from-failure or --ops")
    instance = open_instance()
    new = reexecute_from_definitions(instance, run_id, mode="from_failure" if from_failure else "all", ops=ops,
                                     tags=parse_tags(tags))
    keys = new.step_keys_to_execute
    what = "all steps" if keys is None else f"{len(keys)} step(s): {', '.join(keys)}"
    click.echo(f"Launched run {new.run_id} of job '{new.job_name}' ({styled_status(str(new.status))}, "
               f"launcher {instance.run_launcher.name}), re-executing {what} of run {run_id} "
               f"(root {new.root_run_id}).")
    if not wait:
        return
    follow_run(instance, new.run_id, verbose=verbose)
    _summary(instance, new)


@click.command("execute-run")
@click.argument("run_id", type=RUN_ID)
def execute_run(run_id):
    """Run worker: execute one stored run (launchers start this; the instance comes from the
    environment, RUNYARD_HOME / RUNYARD_INSTANCE_FILE)."""
    from ..execution.worker_main import exit_now, run_worker_main

    exit_now(run_worker_main(run_id))
