"""``runyard code-server``: serve one code location over HTTP/JSON (see docs/code-server.md)."""

from __future__ import annotations

import sys

import click

from ..errors import RunyardError
from .common import code_location_options


@click.command("code-server")
@code_location_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=4000, show_default=True,
              help="Port to listen on; 0 picks a free port (printed on start).")
@click.option("--location-name", help="Name of the location (default: the file's stem or the module name).")
@click.option("--evaluation-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Seconds a schedule or sensor function may run before the evaluation "
                                      "answers with a timeout error.")
@click.option("--exit-with-parent", is_flag=True, hidden=True,
              help="Stop when the parent process exits (used by workspaces that supervise the server).")
@click.option("--ready-fd", type=click.IntRange(min=0), metavar="FD",
              help="Once listening, write one JSON line {host, port, pid, location, api_version} to this "
                   "inherited file descriptor, then close it (for programs that start the server).")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Once listening, write the same JSON line to this file (replaced atomically).")
def code_server(python_file, module, attribute, working_directory, host, port, location_name,
                evaluation_timeout, exit_with_parent, ready_fd, ready_file):
    """Serve a code location: the only process that imports its definitions.

    Answers snapshot, run config validation, execution plan, and schedule and sensor evaluation
    requests under /v1/ until SIGTERM or Ctrl-C. A definitions file that fails to import leaves the
    server up: /v1/health reports the error and /v1/reload tries again.
    """
    from ..codeserver.serving import run_code_server
    from ..workspace.loader import code_pointer_for

    if not python_file and not module:
        raise click.UsageError("give a definitions file with -f FILE or a module with -m MODULE")
    pointer = code_pointer_for(python_file, module, attribute, working_directory)
    try:
        code = run_code_server(pointer, location_name=location_name, host=host, port=port,
                               evaluation_timeout=evaluation_timeout, exit_with_parent=exit_with_parent,
                               ready_fd=ready_fd, ready_file=ready_file, echo=click.echo)
    except OSError as exc:
        raise RunyardError(f"code server cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sys.exit(code)
