"""``runyard instance info|migrate``."""

from __future__ import annotations

import os

import click

from .common import echo_json, open_instance


@click.group()
def instance() -> None:
    """Inspect and migrate the instance (home, storage, components)."""


def _label(component) -> str:
    """The registered name, or ``module.Class`` for a class selected by module and class."""
    cls = type(component)
    return component.name or f"{cls.__module__}.{cls.__qualname__}"


@instance.command("info")
@click.option("--json", "as_json", is_flag=True)
def info(as_json):
    """Show the home, instance file and selected components."""
    inst = open_instance()
    storage = inst.storage_unchecked()
    data = {
        "home": inst.home,
        "instance_file": inst.instance_file,
        "instance_file_exists": os.path.exists(inst.instance_file),
        "storage": storage.describe(),
        "run_coordinator": _label(inst.run_coordinator),
        "run_launcher": _label(inst.run_launcher),
        "runs": storage.count_runs() if storage.schema_revision() else 0,
    }
    if as_json:
        echo_json(data)
        return
    click.echo(f"Home             {data['home']}")
    click.echo(f"Instance file    {data['instance_file']}"
               + ("" if data["instance_file_exists"] else " (absent: all defaults)"))
    storage_info = dict(data["storage"])
    click.echo(f"Storage          {storage_info.pop('storage')}")
    for key, value in storage_info.items():
        click.echo(f"  {key.replace('_', ' '):15} {value}")
    click.echo(f"Run coordinator  {data['run_coordinator']}")
    click.echo(f"Run launcher     {data['run_launcher']}")
    click.echo(f"Runs             {data['runs']}")


@instance.command("migrate")
def migrate():
    """Upgrade the storage schema to the newest revision (creates it on an empty database)."""
    inst = open_instance()
    before, after = inst.storage_unchecked().migrate()
    if before == after:
        click.echo(f"Storage is at the newest schema revision ({after}); nothing to do.")
    else:
        click.echo(f"Migrated storage from revision {before or '(empty)'} to {after}.")
