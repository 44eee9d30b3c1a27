"""``runyard daemon [status]``, ``runyard schedule ...``, ``runyard sensor ...`` and ``runyard dev``
(docs/daemon.md, docs/schedules-and-sensors.md)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import click

from ..errors import ConfigError
from .common import close_service, echo_json, fmt_time, open_instance


def workspace_options(fn):
    fn = click.option("-f", "--python-file", "python_files", multiple=True, type=click.Path(dir_okay=False),
                      help="A definitions file to serve as a code location (repeatable).")(fn)
    fn = click.option("-w", "--workspace", "workspace_file", type=click.Path(dir_okay=False),
                      help="Workspace file (default: ./workspace.yaml when it exists).")(fn)
    return fn


def open_cli_workspace(python_files: tuple[str, ...], workspace_file: str | None, *, required: bool):
    """The workspace (not started) of ``-f``/``-w`` options, else ./workspace.yaml; None when there is
    neither and ``required`` is false. Shared with plugin commands (``runyard webui``)."""
    from ..daemon.daemon import open_workspace
    from ..workspace.config import DEFAULT_WORKSPACE_FILE

    if python_files and workspace_file:
        raise click.UsageError("give definitions files (-f) or a workspace file (-w), not both")
    if not python_files and not workspace_file and not os.path.exists(DEFAULT_WORKSPACE_FILE):
        if required:
            raise click.UsageError("give definitions files with -f FILE or a workspace file with -w FILE "
                                   f"(no ./{DEFAULT_WORKSPACE_FILE} here)")
        return None
    return open_workspace(list(python_files), workspace_file)


def _start_webui(instance, workspace, port: int | None):
    """The web UI on a background thread when ``runyard-webui`` is installed, else None (with a note)."""
    try:
        from runyard_webui.server import start_webui
        from runyard_webui.settings import load_webui_settings
    except ImportError:
        click.echo("  web UI: not installed (pip install runyard-webui); running without it", err=True)
        return None
    return start_webui(instance, workspace, load_webui_settings(instance, {"port": port}))


def _serve(python_files, workspace_file, *, banner: str, webui: bool = False, webui_port: int | None = None) -> None:
    """Run the daemon (and the workspace's code servers, and with ``webui`` the web UI) until
    SIGINT/SIGTERM; then stop everything."""
    from ..daemon import Daemon

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    instance = open_instance()
    workspace = open_cli_workspace(python_files, workspace_file, required=False)
    daemon = web = None
    try:
        if workspace is not None:
            workspace.start()
        daemon = Daemon(instance, workspace)
        daemon.start()
        if webui:
            web = _start_webui(instance, workspace, webui_port)
        click.echo(f"{banner}: daemon {daemon.daemon_id} "
                   f"({'leader' if daemon.lease.is_leader else 'standby: waiting for the lease'})")
        click.echo(f"  instance home: {instance.home}")
        click.echo(f"  storage: {instance.storage.describe().get('url', instance.storage.name)}")
        click.echo(f"  run coordinator: {instance.run_coordinator.name}, "
                   f"run launcher: {instance.run_launcher.name}")
        for loc in workspace.locations() if workspace is not None else []:
            where = loc.client.address if loc.status == "ok" else (loc.error.message if loc.error else loc.status)
            click.echo(f"  code location {loc.name}: {loc.status} {where}")
        if workspace is None:
            click.echo("  no workspace: running the run queue and run monitoring only")
        if web is not None:
            click.echo(f"  web UI: {web.url}")
        click.echo("Press Ctrl-C to stop.", err=True)
        while not stop.wait(0.5):
            pass
        click.echo("Stopping...", err=True)
    finally:
        if web is not None:
            web.stop(timeout=2)
        if daemon is not None:
            daemon.stop()
        close_service(instance, workspace)
        for sig, handler in old.items():
            signal.signal(sig, handler)


# ---- runyard daemon ------------------------------------------------------------------------------
@click.group(invoke_without_command=True)
@workspace_options
@click.pass_context
def daemon(ctx, python_files, workspace_file):
    """Run the daemon: schedules, sensors, the run queue and run monitoring.

    Several replicas may run against one storage: one holds the lease and works, the others stand by
    and take over within daemon.lease_seconds when it dies. Stop with Ctrl-C or SIGTERM (the lease is
    released at once).
    """
    if ctx.invoked_subcommand is None:
        _serve(python_files, workspace_file, banner="runyard daemon")


@daemon.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def daemon_status(as_json):
    """Each daemon's loops: last heartbeat, leadership, last error; and who holds the lease."""
    from ..daemon.status import daemon_status as collect

    now = time.time()
    data = collect(open_instance().storage, now)
    lease, daemons = data["lease"], {d["daemon_id"]: d for d in data["daemons"]}
    if as_json:
        echo_json(data)
        return
    if lease is None or lease["expires_in_seconds"] < 0:
        click.echo("Lease: nobody holds it (no daemon is working)")
    else:
        click.echo(f"Lease: held by {lease['holder']} (token {lease['token']}, "
                   f"expires in {lease['expires_in_seconds']:.1f}s)")
    if not daemons:
        click.echo("No daemon heartbeats.")
    for d in daemons.values():
        role = "leader" if d["leader"] else ("stopped" if d.get("stopped") else "standby")
        click.echo(f"{click.style(d['daemon_id'], bold=True)}  {role}")
        for loop, info in sorted(d["loops"].items()):
            line = f"  {loop:<11} last heartbeat {fmt_time(info['last_heartbeat'])} ({info['age_seconds']:g}s ago)"
            if info["last_error"]:
                line += click.style(f"  error: {info['last_error']}", fg="red")
            click.echo(line)


# ---- schedules and sensors -----------------------------------------------------------------------
def _instigators(kind: str, python_files, workspace_file):
    """(instance, workspace started, {name: (location, definition)}) — caller shuts the workspace down."""
    instance = open_instance()
    ws = open_cli_workspace(python_files, workspace_file, required=True).start()
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    for loc in ws.locations():
        if loc.snapshot is None:
            click.echo(f"Warning: code location {loc.name} is {loc.status}"
                       + (f": {loc.error.message}" if loc.error else ""), err=True)
            continue
        table = loc.snapshot.schedules if kind == "schedule" else loc.snapshot.sensors
        for name, d in table.items():
            found[name] = (loc, d)
    return instance, ws, found


def _lookup(kind: str, found: dict, name: str):
    if name not in found:
        raise ConfigError(f"no {kind} named '{name}' in the workspace; {kind}s: "
                          f"{', '.join(sorted(found)) or 'none'}")
    return found[name]


def _status(instance, name: str, definition: dict[str, Any]) -> str:
    from ..daemon.daemon import instigator_status

    return instigator_status(instance, name, definition.get("default_status"))


def _last_tick(instance, name: str) -> dict[str, Any] | None:
    ticks = instance.storage.get_ticks(name, limit=1)
    if not ticks:
        return None
    t = ticks[0]
    return {"tick_time": t.tick_time, "status": t.status, "run_ids": t.run_ids, "skip_reason": t.skip_reason,
            "error": t.error}


def _list(kind: str, python_files, workspace_file, as_json: bool) -> None:
    from ..daemon.daemon import next_fire_times

    instance, ws, found = _instigators(kind, python_files, workspace_file)
    try:
        rows = []
        for name, (loc, d) in sorted(found.items()):
            row = {"name": name, "location": loc.name, "job_name": d.get("job_name"),
                   "status": _status(instance, name, d), "last_tick": _last_tick(instance, name)}
            if kind == "schedule":
                row.update(cron_schedule=d["cron_schedule"], execution_timezone=d.get("execution_timezone"),
                           next_tick=next_fire_times(d["cron_schedule"], d.get("execution_timezone") or "UTC",
                                                     time.time(), 1)[0])
            else:
                row["minimum_interval_seconds"] = d.get("minimum_interval_seconds")
            rows.append(row)
    finally:
        ws.shutdown()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"No {kind}s.")
    for row in rows:
        status = click.style(row["status"], fg="green" if row["status"] == "RUNNING" else None)
        what = (f"{row['cron_schedule']} ({row['execution_timezone']}), next {fmt_time(row['next_tick'])}"
                if kind == "schedule" else f"every {row['minimum_interval_seconds']:g}s")
        click.echo(f"{click.style(row['name'], bold=True)}  {status}  job {row['job_name']}  {what}  "
                   f"[{row['location']}]")
        last = row["last_tick"]
        if last:
            detail = last["error"] or last["skip_reason"] or ", ".join(last["run_ids"])
            click.echo(f"  last tick {fmt_time(last['tick_time'])}: {last['status']} {detail or ''}".rstrip())


def _set_state(kind: str, name: str, python_files, workspace_file, status: str) -> None:
    instance, ws, found = _instigators(kind, python_files, workspace_file)
    try:
        _lookup(kind, found, name)
    finally:
        ws.shutdown()
    state = instance.storage.get_instigator_state(name)
    data = dict(state.get("data") or {}) if state else {}
    if status == "RUNNING" and kind == "schedule":
        data["cursor_time"] = time.time()  # ticks from now on: starting never replays old ticks
    instance.storage.set_instigator_state(name, kind, status, data)
    click.echo(f"{kind.capitalize()} {name} is {status}.")


def _show_result(result) -> None:
    if result.error is not None:
        click.echo(click.style(f"  error: {result.error.message}", fg="red"))
    elif not result.run_requests:
        click.echo(f"  skipped: {result.skip_reason or 'no run requested'}")
    for req in result.run_requests:
        click.echo(f"  run of {req.job_name}" + (f" (run key {req.run_key})" if req.run_key else ""))
        click.echo(f"    run config: {req.run_config}")
        if req.tags:
            click.echo(f"    tags: {req.tags}")


@click.group()
def schedule() -> None:
    """List, start, stop and preview schedules (their on/off state lives in storage)."""


@schedule.command("list")
@workspace_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def schedule_list(python_files, workspace_file, as_json):
    """Every schedule of the workspace: status, cron, next and last tick."""
    _list("schedule", python_files, workspace_file, as_json)


@schedule.command("start")
@click.argument("name")
@workspace_options
def schedule_start(name, python_files, workspace_file):
    """Turn a schedule on (its ticks start from now)."""
    _set_state("schedule", name, python_files, workspace_file, "RUNNING")


@schedule.command("stop")
@click.argument("name")
@workspace_options
def schedule_stop(name, python_files, workspace_file):
    """Turn a schedule off."""
    _set_state("schedule", name, python_files, workspace_file, "STOPPED")


@schedule.command("preview")
@click.argument("name")
@workspace_options
@click.option("--ticks", default=3, show_default=True, type=click.IntRange(1, 100),
              help="How many upcoming ticks to evaluate.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def schedule_preview(name, python_files, workspace_file, ticks, as_json):
    """Evaluate the next ticks of a schedule without creating runs or recording ticks."""
    from ..daemon.daemon import next_fire_times

    _, ws, found = _instigators("schedule", python_files, workspace_file)
    try:
        loc, d = _lookup("schedule", found, name)
        times = next_fire_times(d["cron_schedule"], d.get("execution_timezone") or "UTC", time.time(), ticks)
        results = [(t, loc.client.evaluate_schedule(name, t)) for t in times]
    finally:
        ws.shutdown()
    if as_json:
        echo_json([{"tick_time": t, **r.to_json()} for t, r in results])
        return
    for t, r in results:
        click.echo(f"{fmt_time(t)}:")
        _show_result(r)


@click.group()
def sensor() -> None:
    """List, start, stop and preview sensors (their on/off state and cursor live in storage)."""


@sensor.command("list")
@workspace_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sensor_list(python_files, workspace_file, as_json):
    """Every sensor of the workspace: status, interval, last tick."""
    _list("sensor", python_files, workspace_file, as_json)


@sensor.command("start")
@click.argument("name")
@workspace_options
def sensor_start(name, python_files, workspace_file):
    """Turn a sensor on."""
    _set_state("sensor", name, python_files, workspace_file, "RUNNING")


@sensor.command("stop")
@click.argument("name")
@workspace_options
def sensor_stop(name, python_files, workspace_file):
    """Turn a sensor off (its cursor is kept)."""
    _set_state("sensor", name, python_files, workspace_file, "STOPPED")


@sensor.command("preview")
@click.argument("name")
@workspace_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sensor_preview(name, python_files, workspace_file, as_json):
    """Evaluate a sensor once with its stored cursor, without creating runs or storing anything."""
    instance, ws, found = _instigators("sensor", python_files, workspace_file)
    try:
        loc, _ = _lookup("sensor", found, name)
        state = instance.storage.get_instigator_state(name)
        data = (state or {}).get("data") or {}
        result = loc.client.evaluate_sensor(name, cursor=data.get("cursor"),
                                            last_tick_time=data.get("last_tick_time"))
    finally:
        ws.shutdown()
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(f"{name} (cursor {data.get('cursor')!r} -> {result.cursor!r}):")
    _show_result(result)


# ---- runyard dev ---------------------------------------------------------------------------------
@click.command()
@workspace_options
@click.option("-p", "--port", type=int, default=None,
              help="Web UI port [webui.port in the instance file, default 3000; 0 picks a free one].")
@click.option("--webui/--no-webui", "with_webui", default=True, show_default=True,
              help="Serve the web UI too (needs runyard-webui installed).")
def dev(python_files, workspace_file, port, with_webui):
    """Start the code servers, the daemon and the web UI in one terminal on the instance (SQLite by
    default).

    Ctrl-C stops everything: the web UI, the daemon (which releases its lease), the code servers and
    the run worker zygote. Runs still in progress keep their own workers.
    """
    if not python_files and not workspace_file and not os.path.exists("workspace.yaml"):
        raise click.UsageError("give definitions files with -f FILE or a workspace file with -w FILE")
    _serve(python_files, workspace_file, banner="runyard dev", webui=with_webui, webui_port=port)
