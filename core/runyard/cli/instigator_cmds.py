"""``runyard schedule list|start|stop|preview`` and ``runyard sensor list|start|stop|preview``
(docs/schedules-and-sensors.md): one group factory, the work in :mod:`runyard.operations.instigators`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..storage.records import InstigatorStatus
from .common import echo_json, fmt_time, open_instance
from .daemon_cmds import workspace_options


@contextmanager
def _locations() -> Iterator[tuple[Any, Callable[[tuple[str, ...], str | None], list]]]:
    """``(instance, open)``: ``open(python_files, workspace_file)`` starts the workspace and returns
    its locations, warning about those that did not load; it is shut down on exit."""
    from ..errors import ConfigError
    from ..operations.errors import NotFoundError
    from ..operations.workspace import open_workspace

    started = []

    def open_(python_files, workspace_file):
        ws = open_workspace(python_files, workspace_file, required=True).start()
        started.append(ws)
        for loc in ws.locations():
            if loc.snapshot is None:
                click.echo(f"Warning: code location {loc.name} is {loc.status}"
                           + (f": {loc.error.message}" if loc.error else ""), err=True)
        return ws.locations()

    try:
        yield open_instance(), open_
    except NotFoundError as exc:  # an unknown name is a usage error here, as for any config key
        raise ConfigError(str(exc)) from exc
    finally:
        for ws in started:
            ws.shutdown()


def _row(info) -> dict[str, Any]:
    """The stable ``list --json`` shape (docs/cli.md)."""
    d = info.definition
    t = info.last_tick
    row = {"name": info.name, "location": info.location.name, "job_name": d.job_name,
           "status": info.status.value,
           "last_tick": None if t is None else {"tick_time": t.tick_time, "status": str(t.status),
                                                "run_ids": t.run_ids, "skip_reason": t.skip_reason,
                                                "error": t.error}}
    if info.kind == "schedule":
        row.update(cron_schedule=d.cron_schedule, execution_timezone=d.execution_timezone, next_tick=info.next_tick)
    else:
        row["minimum_interval_seconds"] = d.minimum_interval_seconds
    return row


def _show_result(result) -> None:
    if result.error is not None:
        click.echo(click.style(f"  error: {result.error.message}", fg="red"))
    elif not result.run_requests:
        click.echo(f"  skipped: {result.skip_reason or 'no run requested'}")
    for req in result.run_requests:
        click.echo(f"  run of {req.job_name}" + (f" (run key {req.run_key})" if req.run_key else "")
                   + (f", partition {req.partition_key}" if req.partition_key else ""))
        click.echo(f"    run config: {req.run_config}")
        if req.tags:
            click.echo(f"    tags: {req.tags}")


def instigator_group(kind: str, *, help: str, list_help: str, start_help: str, stop_help: str) -> click.Group:
    """The ``runyard schedule`` or ``runyard sensor`` group with its list, start and stop commands;
    each kind adds its own ``preview``."""
    from ..operations import instigators as ops

    group = click.Group(kind, help=help)

    @group.command("list", help=list_help)
    @workspace_options
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def list_(python_files, workspace_file, as_json):
        with _locations() as (instance, open_):
            rows = [_row(i) for i in ops.list_instigators(instance, open_(python_files, workspace_file), kind,
                                                          last_tick=True)]
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo(f"No {kind}s.")
        for row in rows:
            status = click.style(row["status"], fg="green" if row["status"] == InstigatorStatus.RUNNING else None)
            what = (f"{row['cron_schedule']} ({row['execution_timezone']}), next {fmt_time(row['next_tick'])}"
                    if kind == "schedule" else f"every {row['minimum_interval_seconds']:g}s")
            click.echo(f"{click.style(row['name'], bold=True)}  {status}  job {row['job_name']}  {what}  "
                       f"[{row['location']}]")
            last = row["last_tick"]
            if last:
                detail = last["error"] or last["skip_reason"] or ", ".join(last["run_ids"])
                click.echo(f"  last tick {fmt_time(last['tick_time'])}: {last['status']} {detail or ''}".rstrip())

    def toggle(running: bool, doc: str) -> None:
        @group.command("start" if running else "stop", help=doc)
        @click.argument("name")
        @workspace_options
        def command(name, python_files, workspace_file):
            with _locations() as (instance, open_):
                info = ops.set_status(instance, open_(python_files, workspace_file), kind, name, running)
            click.echo(f"{kind.capitalize()} {name} is {info.status.value}.")

    toggle(True, start_help)
    toggle(False, stop_help)
    return group


schedule = instigator_group(
    "schedule", help="List, start, stop and preview schedules (their on/off state lives in storage).",
    list_help="Every schedule of the workspace: status, cron, next and last tick.",
    start_help="Turn a schedule on (its ticks start from now).", stop_help="Turn a schedule off.")
sensor = instigator_group(
    "sensor", help="List, start, stop and preview sensors (their on/off state and cursor live in storage).",
    list_help="Every sensor of the workspace: status, interval, last tick.",
    start_help="Turn a sensor on.", stop_help="Turn a sensor off (its cursor is kept).")


@schedule.command("preview")
@click.argument("name")
@workspace_options
@click.option("--ticks", default=3, show_default=True, type=click.IntRange(1, 100),
              help="How many upcoming ticks to evaluate.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def schedule_preview(name, python_files, workspace_file, ticks, as_json):
    """Evaluate the next ticks of a schedule without creating runs or recording ticks."""
    from ..operations.instigators import preview_schedule

    with _locations() as (_, open_):
        results = preview_schedule(open_(python_files, workspace_file), name, ticks)
    if as_json:
        echo_json([{"tick_time": t, **r.to_json()} for t, r in results])
        return
    for t, r in results:
        click.echo(f"{fmt_time(t)}:")
        _show_result(r)


@sensor.command("preview")
@click.argument("name")
@workspace_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sensor_preview(name, python_files, workspace_file, as_json):
    """Evaluate a sensor once with its stored cursor, without creating runs or storing anything."""
    from ..operations.instigators import preview_sensor

    with _locations() as (instance, open_):
        cursor, result = preview_sensor(instance, open_(python_files, workspace_file), name)
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(f"{name} (cursor {cursor!r} -> {result.cursor!r}):")
    _show_result(result)
