"""``runyard workspace list|reload``: the code locations of a workspace file (docs/workspace.md)."""

from __future__ import annotations

import sys

import click

from .common import echo_json

_workspace_option = click.option(
    "-w", "--workspace", "workspace_file", default="workspace.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="Workspace file listing the code locations.")

_STATUS_COLORS = {"ok": "green", "error": "red", "unavailable": "red", "starting": "yellow"}


@click.group()
def workspace() -> None:
    """Inspect and reload the code locations of a workspace file."""


def _open(workspace_file: str):
    from ..workspace.workspace import Workspace

    return Workspace.from_file(workspace_file).start()


@workspace.command("list")
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_locations(workspace_file, as_json):
    """List the code locations: origin, status, what they define, snapshot id, error.

    Local locations (python_file, python_module) are started for this command and stopped after.
    """
    ws = _open(workspace_file)
    try:
        rows = [loc.describe() for loc in ws.locations()]
    finally:
        ws.shutdown()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No code locations.")
    for row in rows:
        status = click.style(row["status"].upper(), fg=_STATUS_COLORS.get(row["status"]))
        click.echo(f"{click.style(row['location'], bold=True)}  {status}  {row['origin']}")
        if row["status"] == "ok":
            click.echo(f"  {row['jobs']} job(s), {row['schedules']} schedule(s), {row['sensors']} sensor(s); "
                       f"snapshot {row['snapshot_id'][:12]}")
        if row["error"]:
            click.echo("  " + row["error"].replace("\n", "\n  "))


@workspace.command("reload")
@_workspace_option
@click.argument("location", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reload_locations(workspace_file, location, as_json):
    """Reload the definitions of one LOCATION, or of every location.

    A code_server location re-imports its definitions (POST /v1/reload): every process using that
    server sees them. A local location is started afresh by this command, so its reload reports
    what it loads now. Either way the reload is announced through the instance's storage, and the
    daemons and web UIs of this instance reload their own servers of that location within a few
    seconds. Exits 1 if a location fails to load or cannot be reached.
    """
    from ..operations.workspace import LocationWatch
    from .common import open_instance

    instance = open_instance()
    ws = _open(workspace_file)
    try:
        results = LocationWatch(ws, lambda: instance.storage).reload(location)
    finally:
        ws.shutdown()
        instance.dispose()
    if as_json:
        echo_json(results)
    else:
        for r in results:
            status = click.style(r["status"].upper(), fg=_STATUS_COLORS.get(r["status"]))
            what = ""
            if r["status"] == "ok":
                what = f"snapshot {r['snapshot_id'][:12]}" + (" (changed)" if r.get("changed") else " (unchanged)")
            click.echo(f"{click.style(r['location'], bold=True)}  {status}  {what}".rstrip())
            if r["error"]:
                click.echo("  " + r["error"].replace("\n", "\n  "))
    if any(r["status"] != "ok" for r in results):
        sys.exit(1)
