"""``runyard job list|execute|launch``."""

from __future__ import annotations

import sys

import click

from ..storage.records import RunStatus
from .common import (
    code_location_options,
    echo_json,
    fmt_duration,
    format_event,
    load_location,
    load_run_config,
    open_instance,
    parse_tags,
    progress_printer,
    styled_status,
)


@click.group()
def job() -> None:
    """Inspect and run the jobs of a definitions file or module."""


@job.command("list")
@code_location_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_jobs(python_file, module, attribute, working_directory, as_json):
    """List the jobs (with their ops) of a code location."""
    _, defs = load_location(python_file, module, attribute, working_directory)
    if as_json:
        echo_json([{"name": j.name, "description": j.description, "ops": j.topological_order,
                    "resources": sorted(j.resource_defs), "tags": j.tags}
                   for j in (defs.jobs[n] for n in defs.job_names)])
        return
    if not defs.jobs:
        click.echo("No jobs defined.")
    for name in defs.job_names:
        j = defs.jobs[name]
        desc = f" — {j.description.splitlines()[0]}" if j.description else ""
        click.echo(f"{click.style(name, bold=True)} ({len(j.nodes)} ops){desc}")
        click.echo("  ops: " + ", ".join(j.topological_order))


def _run_options(fn):
    fn = click.option("--ops", "ops", metavar="SELECTION",
                      help="Run only these ops: comma-separated names or globs, with *NAME (and all "
                           "upstream), NAME* (and all downstream), +NAME / NAME+ (one level per +).")(fn)
    fn = click.option("-v", "--verbose", is_flag=True, help="Show every event, DEBUG ones included.")(fn)
    fn = click.option("--tag", "tags", multiple=True, help="Run tag KEY=VALUE (repeatable).")(fn)
    fn = click.option("-c", "--config", "config_files", multiple=True, type=click.Path(dir_okay=False),
                      help="Run config YAML file (repeatable; later files win).")(fn)
    fn = click.option("-j", "--job", "job_name", required=True, help="Job to run.")(fn)
    fn = click.option("--partition", "partition_key", metavar="KEY",
                      help="Run the partition KEY of a partitioned job: its run config and tags, with "
                           "-c files merged over them (runyard job partitions lists the keys).")(fn)
    return code_location_options(fn)


def _load(python_file, module, attribute, working_directory, job_name, config_files, tags, ops=None,
          partition_key=None):
    """``(code pointer, job, run config, tags, selected step keys, runyard tags)`` of the command
    line; with a partition, its run config (the -c files merged over it) and tags."""
    from ..definitions.config import deep_merge
    from ..definitions.selection import parse_op_selection
    from ..tags import PARTITION_TAG, check_user_tags

    pointer, defs = load_location(python_file, module, attribute, working_directory)
    job_def = defs.get_job(job_name)
    run_config = load_run_config(config_files)
    tag_map = parse_tags(tags)
    check_user_tags(tag_map)
    runyard_tags: dict[str, str] = {}
    if partition_key is not None:
        partition_config, partition_tags = job_def.run_request_for_partition(partition_key)
        runyard_tags[PARTITION_TAG] = partition_tags.pop(PARTITION_TAG)
        run_config = deep_merge(partition_config, run_config)
        tag_map = {**partition_tags, **tag_map}
    step_keys = None if ops is None else parse_op_selection(job_def, ops)
    return pointer, job_def, run_config, tag_map, step_keys, runyard_tags


def _steps_note(run) -> str:
    keys = run.step_keys_to_execute
    return "" if keys is None else f" [{len(keys)} selected step(s): {', '.join(keys)}]"


def _summary(instance, run) -> None:
    run = instance.get_run(run.run_id)
    click.echo(f"Run {run.run_id} {styled_status(str(run.status))} in {fmt_duration(run.duration)}.")
    sys.exit(0 if run.status == RunStatus.SUCCESS else 1)


@job.command("execute")
@_run_options
def execute(python_file, module, attribute, working_directory, job_name, partition_key, config_files, tags,
            verbose, ops):
    """Run a job in this process, showing live step progress."""
    from ..execution.api import prepare_run
    from ..execution.run_worker import execute_run

    pointer, job_def, run_config, tag_map, step_keys, runyard_tags = _load(
        python_file, module, attribute, working_directory, job_name, config_files, tags, ops, partition_key)
    instance = open_instance()
    run = prepare_run(instance, job_def, code_pointer=pointer, run_config=run_config, tags=tag_map,
                      step_keys_to_execute=step_keys, runyard_tags=runyard_tags)
    click.echo(f"Executing job '{job_name}' as run {run.run_id} (in this process){_steps_note(run)}.")
    _record_this_process(instance, run.run_id)
    execute_run(instance, run.run_id, job=job_def, listeners=[progress_printer(verbose)], contain_processes=True)
    _summary(instance, run)


def _record_this_process(instance, run_id: str) -> None:
    """This process is the run's worker: recorded like a launched one, so `runyard run health` can
    finish the run if the process dies without writing its end (e.g. storage stayed unavailable)."""
    import os

    from ..launchers import procinfo

    pid = os.getpid()
    instance.storage.update_run(run_id, launcher_info={"pid": pid, "pid_start": procinfo.start_ticks(pid),
                                                       "host": os.uname().nodename, "in_process": True})


@job.command("launch")
@_run_options
@click.option("--wait/--no-wait", default=False, help="Follow the run's events until it finishes.")
def launch(python_file, module, attribute, working_directory, job_name, partition_key, config_files, tags,
           verbose, ops, wait):
    """Submit a run through the run coordinator and launcher."""
    from ..operations.launch import launch_from_definitions
    from ..tags import USER_TAG, os_user

    pointer, job_def, run_config, tag_map, step_keys, runyard_tags = _load(
        python_file, module, attribute, working_directory, job_name, config_files, tags, ops, partition_key)
    instance = open_instance()
    run = launch_from_definitions(instance, job_def, code_pointer=pointer, run_config=run_config, tags=tag_map,
                                  step_keys_to_execute=step_keys, runyard_tags={**runyard_tags, USER_TAG: os_user()})
    click.echo(f"Launched run {run.run_id} of job '{job_name}' ({styled_status(str(run.status))}, "
               f"launcher {instance.run_launcher.name}){_steps_note(run)}.")
    if not wait:
        return
    follow_run(instance, run.run_id, verbose=verbose)
    _summary(instance, run)


@job.command("partitions")
@code_location_options
@click.option("-j", "--job", "job_name", required=True, help="The partitioned job.")
@click.option("--status", "statuses", multiple=True, metavar="STATUS",
              help="Only partitions whose last run has this status (repeatable; MISSING: never run).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def partitions(python_file, module, attribute, working_directory, job_name, statuses, as_json):
    """List a partitioned job's partition keys, each with its last run and that run's status."""
    from ..operations.partitions import partition_statuses

    _, defs = load_location(python_file, module, attribute, working_directory)
    job_def = defs.get_job(job_name)
    if job_def.partitions_def is None:
        raise click.ClickException(f"job '{job_name}' is not partitioned")
    rows = partition_statuses(open_instance().storage, job_name, job_def.partitions_def.get_partition_keys())
    wanted = {s.upper() for s in statuses}
    if wanted:
        rows = [r for r in rows if r.status in wanted]
    if as_json:
        echo_json([{"partition_key": r.partition_key, "status": r.status, "run_id": r.run_id,
                    "end_time": r.end_time} for r in rows])
        return
    if not rows:
        click.echo("No partitions.")
    width = max((len(r.partition_key) for r in rows), default=0)
    for r in rows:
        status = styled_status(r.status) if r.run_id else click.style(r.status, dim=True)
        click.echo(f"{r.partition_key.ljust(width)}  {status}  {r.run_id or ''}".rstrip())


def follow_run(instance, run_id: str, *, verbose: bool = False, poll: float = 0.5,
               health_every: float = 1.0) -> None:
    """Print a run's events as they are stored until it finishes; check worker health meanwhile
    (``run logs -f``, ``job launch --wait``, ``run reexecute --wait``)."""
    from ..operations.follow import follow_events

    printer = progress_printer(verbose)
    for page in follow_events(instance, run_id, wait_step=poll, health_every=health_every):
        for event in page.events:
            printer(event)


__all__ = ["job", "follow_run", "format_event"]
