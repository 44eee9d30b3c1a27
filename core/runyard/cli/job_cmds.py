"""``runyard job list|execute|launch``."""

from __future__ import annotations

import sys
import time

import click

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
    return code_location_options(fn)


def _prepare(python_file, module, attribute, working_directory, job_name, config_files, tags, ops=None,
             launching=False):
    from ..definitions.selection import parse_op_selection
    from ..execution.api import prepare_run

    pointer, defs = load_location(python_file, module, attribute, working_directory)
    job_def = defs.get_job(job_name)
    run_config = load_run_config(config_files)
    step_keys = None if ops is None else parse_op_selection(job_def, ops)
    instance = open_instance()
    if launching:  # a bad coordinator or launcher config must fail before a run is stored
        _ = instance.run_coordinator, instance.run_launcher
    run = prepare_run(instance, job_def, code_pointer=pointer, run_config=run_config,
                      tags=parse_tags(tags), step_keys_to_execute=step_keys)
    return instance, job_def, run


def _steps_note(run) -> str:
    keys = run.step_keys_to_execute
    return "" if keys is None else f" [{len(keys)} selected step(s): {', '.join(keys)}]"


def _summary(instance, run) -> None:
    run = instance.get_run(run.run_id)
    click.echo(f"Run {run.run_id} {styled_status(str(run.status))} in {fmt_duration(run.duration)}.")
    sys.exit(0 if str(run.status) == "SUCCESS" else 1)


@job.command("execute")
@_run_options
def execute(python_file, module, attribute, working_directory, job_name, config_files, tags, verbose, ops):
    """Run a job in this process, showing live step progress."""
    from ..execution.run_worker import execute_run

    instance, job_def, run = _prepare(python_file, module, attribute, working_directory, job_name,
                                      config_files, tags, ops)
    click.echo(f"Executing job '{job_name}' as run {run.run_id} (in this process){_steps_note(run)}.")
    execute_run(instance, run.run_id, job=job_def, listeners=[progress_printer(verbose)])
    _summary(instance, run)


@job.command("launch")
@_run_options
@click.option("--wait/--no-wait", default=False, help="Follow the run's events until it finishes.")
def launch(python_file, module, attribute, working_directory, job_name, config_files, tags, verbose, ops,
           wait):
    """Submit a run through the run coordinator and launcher."""
    instance, _, run = _prepare(python_file, module, attribute, working_directory, job_name,
                                config_files, tags, ops, launching=True)
    run = instance.submit_run(run)
    click.echo(f"Launched run {run.run_id} of job '{job_name}' ({styled_status(str(run.status))}, "
               f"launcher {instance.run_launcher.name}){_steps_note(run)}.")
    if not wait:
        return
    follow_run(instance, run.run_id, verbose=verbose)
    _summary(instance, run)


def follow_run(instance, run_id: str, *, verbose: bool = False, poll: float = 0.5,
               health_every: float = 1.0) -> None:
    """Print a run's events as they are stored until it finishes; check worker health meanwhile.
    Between reads it waits on the storage (woken by a notification where the backend has them)."""
    from ..storage.records import FINISHED_STATUSES

    printer = progress_printer(verbose)
    cursor = None
    last_health = time.monotonic()
    while True:
        run = instance.get_run(run_id)
        for event in instance.storage.get_events(run_id, after_id=cursor):
            cursor = event.id
            printer(event)
        if run.status in FINISHED_STATUSES:
            for event in instance.storage.get_events(run_id, after_id=cursor):
                cursor = event.id
                printer(event)
            return
        if time.monotonic() - last_health >= health_every:
            last_health = time.monotonic()
            instance.check_run_health(run_id)
        instance.storage.wait_for_events(run_id, cursor, timeout=poll)


__all__ = ["job", "follow_run", "format_event"]
