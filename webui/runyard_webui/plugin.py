"""Entry point of the ``runyard-webui`` distribution: adds ``runyard webui`` to the CLI."""

from __future__ import annotations

from runyard.plugins import hookimpl


@hookimpl
def runyard_register_commands(cli) -> None:
    from .cli import webui

    cli.add_command(webui)
