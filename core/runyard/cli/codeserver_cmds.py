"""``runyard code-server``: serve one code location over HTTP/JSON (see docs/code-server.md)."""

from __future__ import annotations

import sys

import click

from ..errors import RunyardError
from .common import HOST, PORT, SECONDS, code_location_options


@click.command("code-server")
@code_location_options
@click.option("--host", type=HOST, default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=PORT, default=4000, show_default=True,
              help="Port to listen on; 0 picks a free port (printed on start).")
@click.option("--location-name", help="Name of the location (default: the file's stem or the module name).")
@click.option("--evaluation-timeout", type=SECONDS, default=60.0,
              show_default=True, help="Seconds a schedule or sensor function may run before the evaluation "
                                      "answers with a timeout error.")
@click.option("--token-env", metavar="NAME",
              help="Environment variable holding the token every request must carry (Authorization: Bearer); "
                   "default: RUNYARD_CODE_SERVER_TOKEN when it is set. Never give the token itself on a "
                   "command line.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve a non-loopback address without a token (anyone who reaches it can run the "
                   "definitions' code). Without it, a non-loopback --host needs a token.")
@click.option("--threads", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Requests handled at once (schedule and sensor evaluations included).")
@click.option("--max-connections", type=click.IntRange(1, 65535), default=100, show_default=True,
              help="Open connections at once; more wait until one closes.")
@click.option("--request-timeout", type=SECONDS, default=30.0, show_default=True,
              help="Seconds a client has to send a whole request; idle connections close after as long.")
@click.option("--image", metavar="NAME", envvar="RUNYARD_CODE_IMAGE", show_envvar=True,
              help="The container image this server runs from (reported on /v1/health): runs of this location "
                   "use it with the docker launcher, unless the workspace entry names another.")
@click.option("--exit-with-parent", is_flag=True, hidden=True,
              help="Stop when the parent process exits (used by workspaces that supervise the server).")
@click.option("--ready-fd", type=click.IntRange(0, 2**31 - 1), metavar="FD",
              help="Once listening, write one JSON line {host, port, pid, location, api_version} to this "
                   "inherited file descriptor, then close it (for programs that start the server).")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Once listening, write the same JSON line to this file (replaced atomically).")
def code_server(python_file, module, attribute, working_directory, host, port, location_name,
                evaluation_timeout, token_env, insecure_no_auth, threads, max_connections, request_timeout,
                image, exit_with_parent, ready_fd, ready_file):
    """Serve a code location: the only process that imports its definitions.

    Answers snapshot, run config validation, execution plan, and schedule and sensor evaluation
    requests under /v1/ until SIGTERM or Ctrl-C. A definitions file that fails to import leaves the
    server up: /v1/health reports the error and /v1/reload tries again.

    With a token (--token-env NAME or RUNYARD_CODE_SERVER_TOKEN) every request but GET /healthz must
    carry it. A non-loopback --host without a token is refused unless --insecure-no-auth is given.
    """
    from ..codeserver.auth import TOKEN_ENV, is_loopback, take_token
    from ..codeserver.httpd import HttpLimits
    from ..codeserver.serving import run_code_server
    from ..workspace.loader import code_pointer_for

    if not python_file and not module:
        raise click.UsageError("give a definitions file with -f FILE or a module with -m MODULE")
    try:
        token = take_token(token_env)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if token is None and not is_loopback(host) and not insecure_no_auth:
        raise click.UsageError(
            f"refusing to serve on {host} without a token: anyone who reaches it could make it run the "
            f"definitions' code. Give a token in an environment variable ({TOKEN_ENV}, or any NAME with "
            "--token-env NAME), or pass --insecure-no-auth if only trusted clients can reach it.")
    pointer = code_pointer_for(python_file, module, attribute, working_directory)
    limits = HttpLimits(threads=threads, max_connections=max_connections, request_timeout=request_timeout)
    try:
        code = run_code_server(pointer, location_name=location_name, host=host, port=port,
                               evaluation_timeout=evaluation_timeout, exit_with_parent=exit_with_parent,
                               ready_fd=ready_fd, ready_file=ready_file, echo=click.echo, token=token,
                               limits=limits, image=image)
    except OSError as exc:
        raise RunyardError(f"code server cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sys.exit(code)
