"""``runyard webui``."""

from __future__ import annotations

import click

from runyard.params import HOST, PORT


@click.command("webui")
@click.option("-f", "--python-file", "python_files", multiple=True, type=click.Path(dir_okay=False),
              help="A definitions file to serve as a code location (repeatable).")
@click.option("-w", "--workspace", "workspace_file", type=click.Path(dir_okay=False),
              help="Workspace file (default: ./workspace.yaml when it exists).")
@click.option("--host", type=HOST, default=None, help="Interface to listen on [webui.host, default 127.0.0.1].")
@click.option("-p", "--port", type=PORT, default=None, help="Port; 0 picks a free one [webui.port, default 3000].")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Request threads [webui.threads, default 8].")
@click.option("--read-only", is_flag=True, default=None, help="Refuse launches, terminations and toggles.")
@click.option("--insecure-no-auth", is_flag=True, default=False,
              help="Serve beyond loopback (--host 0.0.0.0) without webui.auth: only when something in front "
                   "of the web UI already restricts who reaches it.")
def webui(python_files, workspace_file, host, port, threads, read_only, insecure_no_auth):
    """Serve the web UI: run and job pages, the launchpad, schedules and sensors, and GraphQL at
    /graphql. Stateless: start as many replicas as you like behind a load balancer."""
    from runyard.operations.serve import CallbackService, ServiceRunner, release_instance

    # Signals only set the runner's flag: one may land while waitress's own code holds a lock, so
    # stopping happens in this (main) thread once runner.wait() returns, never in the handler. The
    # imports are inside the block, which starts with the garbage collector paused (ServiceRunner).
    with ServiceRunner(stop_timeout=2) as runner:
        from runyard import Instance
        from runyard.instance.instance import CODE_SERVER_KEYS
        from runyard.operations.workspace import open_workspace

        from .security import check_public_bind, plain_http_warning, public_bind_notice
        from .server import build_web_server
        from .settings import load_webui_settings

        instance = Instance.open()
        runner.callback(lambda: release_instance(instance), "instance")
        settings = load_webui_settings(instance, {"host": host, "port": port, "threads": threads,
                                                  "read_only": read_only})
        check_public_bind(settings, insecure_no_auth)  # before any code server starts
        _ = instance.storage  # an unreachable database or a bad storage block fails here, before listening
        workspace = open_workspace(python_files, workspace_file, required=False,
                                   env=instance.child_environ(CODE_SERVER_KEYS))  # without the web UI's secrets
        if workspace is not None:  # spawned now, waited for in the background: pages serve meanwhile
            runner.start(CallbackService("code servers", lambda: workspace.start(wait=False),
                                         lambda _timeout: workspace.shutdown()))
        if not settings.read_only:
            instance.run_launcher.prepare(instance)  # launches from the UI start warm
        server = runner.start(build_web_server(instance, workspace, settings, insecure_no_auth=insecure_no_auth))
        notice = public_bind_notice(settings)
        click.echo(f"runyard webui: serving on {server.address} ({settings.threads} threads"
                   f"{', read-only' if settings.read_only else ''}{f'; {notice}' if notice else ''})")
        if notice and settings.auth is None:
            click.echo(f"Warning: {notice}", err=True)
        clear_text = plain_http_warning(settings)
        if clear_text:
            click.echo(f"Warning: {clear_text}", err=True)
        click.echo(f"  instance home: {instance.home}")
        if workspace is None:
            click.echo("  no workspace: runs are browsable; give -f FILE or -w FILE to launch jobs")
        else:
            _report_locations(workspace)
        runner.wait()


def _report_locations(workspace) -> None:
    """Each code location's status once its server answered (on a thread: the pages serve meanwhile)."""
    import threading

    def report() -> None:
        workspace.wait_started()
        for loc in workspace.locations():
            click.echo(f"  code location {loc.name}: {loc.status}" + (f" ({loc.error.message})" if loc.error else ""))

    threading.Thread(target=report, name="location report", daemon=True).start()
