"""``runyard plugins``."""

from __future__ import annotations

import click

from .common import echo_json


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List installed plugins, their versions and the components they provide.

    A plugin whose register hook fails is listed as broken, with its error, and the others still
    work: only selecting one of its components fails."""
    from ..plugins import list_plugins

    items = list_plugins()
    if as_json:
        echo_json(items)
        return
    for p in items:
        version = f" {p['version']}" if p["version"] else ""
        dist = p["distribution"] or "?"
        click.echo(f"{click.style(p['name'], bold=True)}  ({dist}{version})")
        for c in p["components"]:
            click.echo(f"    {c['kind']:16} {c['name']}")
        component_hooks = {f"runyard_register_{c['kind']}" for c in [*p["components"], *p["broken"]]}
        other = [h for h in p["hooks"] if h not in component_hooks]
        if other:
            click.echo(f"    hooks            {', '.join(other)}")
        for b in p["broken"]:
            click.echo(f"    {click.style('broken', fg='red')}           {b['kind']}: {b['error']}")
