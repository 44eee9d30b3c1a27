#!/usr/bin/env python3
"""Run one daemon replica of the compose deployment with a metrics port of its own.

    python daemon_metrics_port.py runyard daemon -w /etc/runyard/workspace.yaml

What the ``daemon`` service runs. Every service shares the host's network, so the daemon replicas
cannot all listen on one port. With ``RUNYARD_DAEMON_METRICS_PORT`` set, each replica takes the
first of the ``RUNYARD_DAEMON_REPLICAS`` ports from it that no other replica holds, puts it in
``RUNYARD_DAEMON_REPLICA_METRICS_PORT`` (the generated instance file's ``daemon.metrics_port``
refers to that variable) and replaces itself with the command. With it unset or empty the command
runs unchanged, and the daemons serve no metrics.

A replica holds its port by binding an abstract Unix socket named after it, which the command
inherits: the kernel frees the name when the daemon exits, however it exits, so a restarted
container takes a port again. Abstract names belong to the network namespace, which the replicas
share just as they share the ports (two compose projects on one host given the same ports do not
both take one either). Probing the TCP port instead would race: the daemon binds it only once it
has loaded the instance, seconds after starting.

When every port is held (more replicas than ``RUNYARD_DAEMON_REPLICAS`` says) it exits 2 with a
message naming the settings, and compose restarts it. A port another program listens on stops the
daemon itself, with its error naming ``daemon.metrics_port``. Standard library only.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

PORT_ENV = "RUNYARD_DAEMON_METRICS_PORT"
REPLICAS_ENV = "RUNYARD_DAEMON_REPLICAS"
#: the variable generate.py's instance file reads daemon.metrics_port from
REPLICA_PORT_ENV = "RUNYARD_DAEMON_REPLICA_METRICS_PORT"


def claim(first: int, count: int) -> tuple[int, socket.socket] | None:
    """The first of ``count`` ports from ``first`` that no other replica holds, and the socket that
    holds it for this process (and the program it becomes); None when all are held."""
    for port in range(first, first + count):
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lock.bind(f"\0runyard-daemon-metrics-port-{port}")
        except OSError as exc:
            lock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        os.set_inheritable(lock.fileno(), True)
        return port, lock
    return None


def main(argv: list[str]) -> int:
    if not argv:
        print(f"usage: {os.path.basename(__file__)} COMMAND [ARG...]", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.pop(REPLICA_PORT_ENV, None)
    first_text = env.get(PORT_ENV, "").strip()
    if first_text:
        replicas_text = env.get(REPLICAS_ENV, "").strip() or "1"
        try:
            first, count = int(first_text), int(replicas_text)
        except ValueError:
            print(f"Error: {PORT_ENV}={first_text!r} and {REPLICAS_ENV}={replicas_text!r} must be whole numbers",
                  file=sys.stderr)
            return 2
        claimed = claim(first, count)
        if claimed is None:
            print(f"Error: no metrics port left for this daemon: other daemons hold all {count} ports from "
                  f"{PORT_ENV}={first} (one per replica, {REPLICAS_ENV}={count}); raise {REPLICAS_ENV} "
                  "to the number of daemons you run", file=sys.stderr)
            return 2
        port, _lock = claimed  # kept open across exec: the daemon holds the port from now on
        env[REPLICA_PORT_ENV] = str(port)
        print(f"daemon metrics port: {port} (the first free of {first} to {first + count - 1})", file=sys.stderr)
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"Error: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
