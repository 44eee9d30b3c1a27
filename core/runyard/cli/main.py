"""Root command, shared options, and the one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import RunyardError


class RunyardGroup(click.Group):
    """Turns :class:`RunyardError` into one clear message and a non-zero exit. Core's own commands
    are imported on first use (:data:`_CORE_COMMANDS`); ``commands`` holds every command once read."""

    @property
    def commands(self) -> dict[str, click.Command]:
        for name in _CORE_COMMANDS:
            if name not in self._commands:
                self._commands[name] = _load_core_command(name)
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None:
            raise TypeError("Command has no name.")
        self._commands[name] = cmd  # not through `commands`, which would import every core command

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._commands and cmd_name in _CORE_COMMANDS:
            self._commands[cmd_name] = _load_core_command(cmd_name)
        return self._commands.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self._commands) | set(_CORE_COMMANDS))

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


# Core's commands, each imported when it is used (or listed): `runyard webui` or a run worker does not
# pay for importing every other command's module. name -> (module under runyard.cli, attribute).
_CORE_COMMANDS = {
    "job": ("job_cmds", "job"),
    "run": ("run_cmds", "run"),
    "execute-run": ("run_cmds", "execute_run"),
    "instance": ("instance_cmds", "instance"),
    "plugins": ("plugin_cmds", "plugins"),
    "code-server": ("codeserver_cmds", "code_server"),
    "workspace": ("workspace_cmds", "workspace"),
    "daemon": ("daemon_cmds", "daemon"),
    "schedule": ("instigator_cmds", "schedule"),
    "sensor": ("instigator_cmds", "sensor"),
    "backfill": ("backfill_cmds", "backfill"),
    "dev": ("dev_cmds", "dev"),
    "auth": ("auth_cmds", "auth"),
}


def _load_core_command(name: str) -> click.Command:
    import importlib

    module, attr = _CORE_COMMANDS[name]
    command = getattr(importlib.import_module(f".{module}", __package__), attr)
    if command.name != name:  # the table and the command's own name must agree
        raise RuntimeError(f"runyard.cli.{module}.{attr} is named {command.name!r}, not {name!r}")
    return command


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
