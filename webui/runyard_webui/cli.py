"""``runyard webui``."""

from __future__ import annotations

import signal
import threading

import click

from runyard.errors import RunyardError


@click.command("webui")
@click.option("-f", "--python-file", "python_files", multiple=True, type=click.Path(dir_okay=False),
              help="A definitions file to serve as a code location (repeatable).")
@click.option("-w", "--workspace", "workspace_file", type=click.Path(dir_okay=False),
              help="Workspace file (default: ./workspace.yaml when it exists).")
@click.option("--host", default=None, help="Interface to listen on [webui.host, default 127.0.0.1].")
@click.option("-p", "--port", type=int, default=None, help="Port; 0 picks a free one [webui.port, default 3000].")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Request threads [webui.threads, default 8].")
@click.option("--read-only", is_flag=True, default=None, help="Refuse launches, terminations and toggles.")
def webui(python_files, workspace_file, host, port, threads, read_only):
    """Serve the web UI: run and job pages, the launchpad, schedules and sensors, and GraphQL at
    /graphql. Stateless: start as many replicas as you like behind a load balancer."""
    from runyard.cli.common import close_service, open_instance
    from runyard.cli.daemon_cmds import open_cli_workspace

    from .app import create_app
    from .server import WebServer
    from .settings import load_webui_settings

    instance = open_instance()
    settings = load_webui_settings(instance, {"host": host, "port": port, "threads": threads,
                                              "read_only": read_only})
    _ = instance.storage  # an unreachable database or a bad storage block fails here, before listening
    workspace = open_cli_workspace(python_files, workspace_file, required=False)
    stop = threading.Event()
    server = None
    try:
        if workspace is not None:
            workspace.start()
        if not settings.read_only:
            instance.run_launcher.prepare(instance)  # launches from the UI start warm
        server = WebServer(create_app(instance, workspace, settings), settings.host, settings.port, settings.threads)
        # The handler only sets a flag: it may interrupt the server's own code while that holds a lock,
        # so stopping happens here in the main thread while the server runs on its own thread.
        old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        click.echo(f"runyard webui: serving on {server.url} ({settings.threads} threads"
                   f"{', read-only' if settings.read_only else ''})")
        click.echo(f"  instance home: {instance.home}")
        for loc in workspace.locations() if workspace is not None else []:
            click.echo(f"  code location {loc.name}: {loc.status}" + (f" ({loc.error.message})" if loc.error else ""))
        if workspace is None:
            click.echo("  no workspace: runs are browsable; give -f FILE or -w FILE to launch jobs")
        server.start()
        while not stop.wait(0.5):
            if not server.running:
                raise RunyardError("the web UI's server stopped unexpectedly")
        for sig, handler in old.items():
            signal.signal(sig, handler)
    finally:
        if server is not None:
            server.stop(timeout=2)
        close_service(instance, workspace)
