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
        # Plugin sections as validated; secrets (SecretStr fields) dump as "**********".
        "sections": {name: model.model_dump(mode="json") for name, model in inst.sections().items()},
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
    for name, values in data["sections"].items():
        click.echo(f"Section {name}")
        flat = _flatten(values)
        width = max([15, *(len(key) for key, _ in flat)])
        for key, value in flat:
            click.echo(f"  {key:{width}} {value}")


def _flatten(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    """``{"auth": {"username": "x"}}`` -> ``[("auth.username", "x")]``, for the text listing."""
    out: list[tuple[str, object]] = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", "-" if value is None else value))
    return out


@instance.command("migrate")
@click.option("--from", "source_file", type=click.Path(exists=True, dir_okay=False),
              help="Also copy every run, event, schedule/sensor state, tick, lease and key-value row from "
                   "the storage that this other instance file selects (e.g. the old SQLite one) into this "
                   "instance's storage, which must be empty. How an instance moves between backends.")
def migrate(source_file):
    """Upgrade the storage schema to the newest revision (creates it on an empty database)."""
    inst = open_instance()
    target = inst.storage_unchecked()
    before, after = target.migrate()
    if before == after:
        click.echo(f"Storage is at the newest schema revision ({after}); nothing to do.")
    else:
        click.echo(f"Migrated storage from revision {before or '(empty)'} to {after}.")
    if source_file:
        _copy_from(inst, target, source_file)


def _copy_from(inst, target, source_file: str) -> None:
    from ..instance.instance import Instance
    from ..storage.sql.transfer import copy_storage

    # The old file is read like an instance file of this home: a relative SQLite path means the same.
    source = Instance.open(inst.home, instance_file=source_file).storage_unchecked()
    try:
        src_before, src_after = source.migrate()
        if src_before != src_after:
            click.echo(f"Migrated the source storage from revision {src_before or '(empty)'} to {src_after}.")
        click.echo(f"Copying {source.display_url} -> {target.display_url}")
        counts = copy_storage(source, target, progress=lambda table, n: click.echo(f"  {table:18} {n} rows"))
    finally:
        source.dispose()
    click.echo(f"Copied {counts.get('runs', 0)} runs and {counts.get('events', 0)} events. Point every "
               "process at the new storage before starting it; the old one was left as it was.")
