"""``runyard dev``, and the daemon service loop it shares with ``runyard daemon`` (docs/daemon.md).

``runyard dev`` runs the code servers, the daemon and every service a plugin contributes through
``runyard_dev_services`` (the web UI, when runyard-webui is installed) in one process. Core knows no
plugin: the options a plugin's services need (the web UI's ``-p/--port``, ``--webui/--no-webui``)
come from ``runyard_dev_options`` when the command is invoked.
"""

from __future__ import annotations

import os
from typing import Any

import click

from ..errors import PluginError, RunyardError
from ..operations.serve import CallbackService, DevContext, Service, ServiceRunner, release_instance
from .common import open_instance
from .daemon_cmds import workspace_options

# How long each service gets to stop (a web server lets running requests finish this long).
STOP_TIMEOUT_SECONDS = 2.0


def serve_daemon(python_files: tuple[str, ...], workspace_file: str | None, *, banner: str,
                 dev_options: dict[str, Any] | None = None, id_file: str | None = None) -> None:
    """Run the workspace's code servers and the daemon (and, with ``dev_options``, the services
    plugins contribute to ``runyard dev``) until SIGINT/SIGTERM; then stop everything, newest first.
    ``id_file``: once the daemon started, its id is written there (for a health probe)."""
    from ..daemon import Daemon
    from ..operations.workspace import open_workspace

    # The runner is entered first so a Ctrl-C while code servers start is a clean stop, not a traceback.
    with ServiceRunner(stop_timeout=STOP_TIMEOUT_SECONDS) as runner:
        instance = open_instance()
        runner.callback(lambda: release_instance(instance), "instance")
        workspace = open_workspace(python_files, workspace_file, required=False, env=code_server_environ(instance))
        if workspace is not None:
            runner.start(CallbackService("code servers", workspace.start, lambda _timeout: workspace.shutdown()))
        daemon = Daemon(instance, workspace)
        runner.start(CallbackService("daemon", daemon.start, lambda _timeout: daemon.stop()))
        if id_file:
            _write_atomically(id_file, daemon.daemon_id + "\n")
        extra: list[Service] = []
        if dev_options is not None:
            context = DevContext(instance=instance, workspace=workspace,
                                 options={"python_files": python_files, "workspace_file": workspace_file,
                                          **dev_options})
            for service in contributed_services(context):
                extra.append(runner.start(service))
        click.echo(f"{banner}: daemon {daemon.daemon_id} "
                   f"({'leader' if daemon.lease.is_leader else 'standby: waiting for the lease'})")
        click.echo(f"  instance home: {instance.home}")
        click.echo(f"  storage: {instance.storage.describe().get('url', instance.storage.name)}")
        click.echo(f"  run coordinator: {instance.run_coordinator.name}, "
                   f"run launcher: {instance.run_launcher.name}")
        if daemon.metrics is not None:
            click.echo(f"  metrics: {daemon.metrics.address}")
        for loc in workspace.locations() if workspace is not None else []:
            where = loc.client.address if loc.status == "ok" else (loc.error.message if loc.error else loc.status)
            click.echo(f"  code location {loc.name}: {loc.status} {where}")
        if workspace is None:
            click.echo("  no workspace: running the run queue and run monitoring only")
        for service in extra:
            click.echo(f"  {service.name}: {service.address or 'running'}")
        if dev_options is not None and not _plugin_manager().hook.runyard_dev_services.get_hookimpls():
            click.echo("  no plugin contributes a service (the web UI does: pip install runyard-webui)",
                       err=True)
        click.echo("Press Ctrl-C to stop.", err=True)
        runner.wait()
        click.echo("Stopping...", err=True)


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def code_server_environ(instance) -> dict[str, str]:
    """The environment of the code servers a service starts: none of the instance file's variables
    (a code server opens no instance, and runs user code)."""
    from ..instance.instance import CODE_SERVER_KEYS

    return instance.child_environ(CODE_SERVER_KEYS)


# ---- what plugins contribute ---------------------------------------------------------------------
def _plugin_manager():
    from ..plugins import get_plugin_manager

    return get_plugin_manager()


def contributed_services(context: DevContext) -> list[Service]:
    """Every plugin's ``runyard_dev_services`` result, in plugin order, checked against the contract."""
    services: list[Service] = []
    for impl in reversed(_plugin_manager().hook.runyard_dev_services.get_hookimpls()):
        try:
            result = impl.function(**({"context": context} if "context" in impl.argnames else {}))
        except RunyardError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name} failed in runyard_dev_services: "
                              f"{type(exc).__name__}: {exc}") from exc
        for service in result or []:
            if not isinstance(service, Service):
                raise PluginError(f"plugin {impl.plugin_name}'s runyard_dev_services returned {service!r}, "
                                  "not a runyard.operations.serve.Service")
            services.append(service)
    return services


def _flags(param: click.Parameter) -> list[str]:
    return [*param.opts, *getattr(param, "secondary_opts", [])]


def contributed_options(existing: list[click.Parameter]) -> list[click.Parameter]:
    """Every plugin's ``runyard_dev_options``; a name or flag used twice is an error naming both."""
    owners: dict[str, str] = {}
    for param in existing:
        for key in (param.name or "", *_flags(param)):
            owners[key] = "runyard dev"
    added: list[click.Parameter] = []
    for impl in reversed(_plugin_manager().hook.runyard_dev_options.get_hookimpls()):
        for param in impl.function() or []:
            if not isinstance(param, click.Parameter):
                raise PluginError(f"plugin {impl.plugin_name}'s runyard_dev_options returned {param!r}, "
                                  "not a click.Option")
            for key in (param.name or "", *_flags(param)):
                if key in owners:
                    raise PluginError(f"runyard dev option '{key}' of plugin {impl.plugin_name} is already "
                                      f"used by {owners[key]}. Uninstall one of them or block it with "
                                      "RUNYARD_DISABLE_PLUGINS.")
                owners[key] = f"plugin {impl.plugin_name}"
            added.append(param)
    return added


class DevCommand(click.Command):
    """A command whose options include those plugins add, loaded only when it is invoked (or its
    ``--help`` shown), so ``runyard --help`` and other commands never load plugins for it."""

    _plugin_params_added = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._plugin_params_added:
            self._plugin_params_added = True
            self.params.extend(contributed_options(list(self.params)))
        return super().get_params(ctx)


@click.command(cls=DevCommand)
@workspace_options
def dev(python_files, workspace_file, **plugin_options):
    """Start the code servers, the daemon and every service installed plugins contribute (the web
    UI, with runyard-webui) in one terminal on the instance (SQLite by default).

    Ctrl-C stops everything: the plugins' services, the daemon (which releases its lease), the code
    servers and the run worker zygote. Runs still in progress keep their own workers.
    """
    if not python_files and not workspace_file and not os.path.exists("workspace.yaml"):
        raise click.UsageError("give definitions files with -f FILE or a workspace file with -w FILE")
    serve_daemon(python_files, workspace_file, banner="runyard dev", dev_options=plugin_options)
