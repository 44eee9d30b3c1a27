"""``runyard daemon [status]`` (docs/daemon.md). The schedule and sensor groups are in
:mod:`.instigator_cmds`; ``runyard dev`` and the serve loop in :mod:`.dev_cmds`."""

from __future__ import annotations

import time

import click

from .common import echo_json, fmt_time, open_instance


def workspace_options(fn):
    fn = click.option("-f", "--python-file", "python_files", multiple=True, type=click.Path(dir_okay=False),
                      help="A definitions file to serve as a code location (repeatable).")(fn)
    fn = click.option("-w", "--workspace", "workspace_file", type=click.Path(dir_okay=False),
                      help="Workspace file (default: ./workspace.yaml when it exists).")(fn)
    return fn


@click.group(invoke_without_command=True)
@workspace_options
@click.option("--id-file", type=click.Path(dir_okay=False), envvar="RUNYARD_DAEMON_ID_FILE", show_envvar=True,
              help="Once started, write this daemon's id to this file (replaced atomically), so a health "
                   "check in the same container can ask `runyard daemon status --check ID` about it.")
@click.pass_context
def daemon(ctx, python_files, workspace_file, id_file):
    """Run the daemon: schedules, sensors, the run queue and run monitoring.

    Several replicas may run against one storage: one holds the lease and works, the others stand by
    and take over within daemon.lease_seconds when it dies. Stop with Ctrl-C or SIGTERM (the lease is
    released at once).
    """
    if ctx.invoked_subcommand is None:
        from .dev_cmds import serve_daemon

        serve_daemon(python_files, workspace_file, banner="runyard daemon", id_file=id_file)


_STATE_COLORS = {"leader": "green", "standby": None, "stale": "yellow", "dead": "red", "stopped": None}


@daemon.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", "check_id", metavar="DAEMON_ID",
              help="A health probe: exit 0 when this daemon is leader or standby (its heartbeat is fresh), "
                   "else print its state and exit 1.")
def daemon_status(as_json, check_id):
    """Each daemon's state and loops: last heartbeat, last error; and who holds the lease.

    A daemon's state comes from its newest heartbeat's age: leader or standby while it reports,
    stale after 3 of its heartbeat intervals of silence, dead after 6, stopped after a clean stop.
    """
    from ..daemon.status import daemon_status as collect

    data = collect(open_instance().storage, time.time())
    lease, daemons = data["lease"], {d["daemon_id"]: d for d in data["daemons"]}
    if check_id is not None:
        _check(daemons.get(check_id.strip()), check_id.strip())
        return
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
        state = d["state"]
        text = click.style(state, fg=_STATE_COLORS.get(state), bold=state in ("dead", "stale"))
        detail = f"last heartbeat {d['age_seconds']:g}s ago, every {d['heartbeat_interval_seconds']:g}s"
        if state in ("dead", "stale") and d["leader"]:
            detail += "; still holds the lease until it expires"
        click.echo(f"{click.style(d['daemon_id'], bold=True)}  {text}  ({detail})")
        for loop, info in sorted(d["loops"].items()):
            line = f"  {loop:<11} last heartbeat {fmt_time(info['last_heartbeat'])} ({info['age_seconds']:g}s ago)"
            if info["stale"] and state in ("leader", "stale"):
                line += click.style("  stale", fg="yellow")
            if info["last_error"]:
                line += click.style(f"  error: {info['last_error']}", fg="red")
            click.echo(line)


def _check(info, daemon_id: str) -> None:
    """``daemon status --check``: one line, and exit 1 unless the daemon is working or standing by."""
    if info is None:
        click.echo(f"daemon {daemon_id}: no heartbeat in storage", err=True)
        raise SystemExit(1)
    line = f"daemon {daemon_id}: {info['state']} (last heartbeat {info['age_seconds']:g}s ago)"
    if info["state"] not in ("leader", "standby"):
        click.echo(line, err=True)
        raise SystemExit(1)
    click.echo(line)
