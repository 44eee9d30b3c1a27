"""Root command, shared options, and the one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import RunyardError


class RunyardGroup(click.Group):
    """Turns :class:`RunyardError` into one clear message and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RunyardError as exc:
            _report(exc)
            sys.exit(exc.exit_code)


def _report(exc: RunyardError) -> None:
    click.echo(f"Error: {exc}", err=True)
    tb = getattr(exc, "user_traceback", None)
    if tb:
        click.echo(tb.rstrip(), err=True)


@click.group(cls=RunyardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runyard")
@click.option("--home", envvar="RUNYARD_HOME", type=click.Path(file_okay=False),
              help="Instance home (default: $RUNYARD_HOME, else ./.runyard).")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """runyard: define jobs as graphs of Python ops and run them anywhere."""
    if home:
        os.environ["RUNYARD_HOME"] = os.path.abspath(home)  # run workers inherit it
    ctx.obj = {"home": home}


def _register() -> None:
    from . import (
        codeserver_cmds,
        daemon_cmds,
        dev_cmds,
        instance_cmds,
        instigator_cmds,
        job_cmds,
        plugin_cmds,
        run_cmds,
        workspace_cmds,
    )

    cli.add_command(job_cmds.job)
    cli.add_command(run_cmds.run)
    cli.add_command(run_cmds.execute_run)
    cli.add_command(instance_cmds.instance)
    cli.add_command(plugin_cmds.plugins)
    cli.add_command(codeserver_cmds.code_server)
    cli.add_command(workspace_cmds.workspace)
    cli.add_command(daemon_cmds.daemon)
    cli.add_command(instigator_cmds.schedule)
    cli.add_command(instigator_cmds.sensor)
    cli.add_command(dev_cmds.dev)


_register()


def _add_plugin_commands() -> None:
    if os.environ.get("RUNYARD_NO_PLUGIN_COMMANDS"):
        return
    from ..plugins import get_plugin_manager

    get_plugin_manager().hook.runyard_register_commands(cli=cli)


def main() -> None:
    try:
        _add_plugin_commands()
        cli.main(prog_name="runyard")
    except RunyardError as exc:  # errors raised while loading plugins
        _report(exc)
        sys.exit(exc.exit_code)
