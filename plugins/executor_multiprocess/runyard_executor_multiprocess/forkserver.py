"""A fork server for step processes, forked from the run worker itself.

The run worker has already imported runyard, the user's definitions and every library they use,
and holds the job, plan and resolved config in memory. Forking a single-threaded copy of it once
per run (the event flusher thread is paused for that instant, so no lock can be inherited held)
gives a server from which each step is one more ``fork()``: a step process starts with nothing to
import, load or validate, in about a millisecond.

Protocol, over a ``SOCK_SEQPACKET`` socket pair (one message per send, so no framing):

* worker -> server: ``(step_key, attempt)`` with the write end of that step's event pipe attached
  (``SCM_RIGHTS``); the server forks, and the child runs the step reporting on the pipe;
* server -> worker: ``("started", step_key, pid)`` and, when a child is reaped,
  ``("exited", pid, wait_status)``.

Both the server and its children ask the kernel to SIGKILL them when their parent dies, so a run
worker killed with SIGKILL leaves no step process behind.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

MAX_MESSAGE = 1 << 16


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent exits (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def send(sock: socket.socket, message: Any, fds: list[int] | None = None) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def receive(sock: socket.socket) -> tuple[Any, list[int]] | None:
    """One message and any attached fds; None at EOF."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 4)
    if not data:
        return None
    return pickle.loads(data), fds


class ForkServer:
    """The worker's handle on the server. ``run_child(conn, step_key, attempt)`` runs in each child."""

    def __init__(self, run_child: Callable[[Any, str, int], None]):
        self._run_child = run_child
        self.sock: socket.socket | None = None
        self.pid: int | None = None

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Output still buffered in this process would be inherited, and written again by the
        # server and by every step process when they flush: write it out once, now.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            code = 0
            try:
                self._serve(theirs)
            except BaseException:  # noqa: BLE001 - the server must never return into the worker
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        theirs.close()
        self.sock, self.pid = ours, pid

    def fork_step(self, step_key: str, attempt: int, event_fd: int) -> None:
        assert self.sock is not None
        send(self.sock, (step_key, attempt), [event_fd])

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()  # EOF: the server reaps what is left and exits
            self.sock = None
        if self.pid is not None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None

    # ---- inside the server -----------------------------------------------------------------------
    def _serve(self, sock: socket.socket) -> None:
        die_with_parent()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD writes to wake_w
        children: set[int] = set()
        open_ = True
        while open_ or children:
            readable, _, _ = select.select([sock, wake_r] if open_ else [wake_r], [], [], 1.0)
            if wake_r in readable:
                os.read(wake_r, 512)
            while children:  # reap every finished child and report it
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    children.clear()
                    break
                if pid == 0:
                    break
                children.discard(pid)
                if open_:
                    try:
                        send(sock, ("exited", pid, status))
                    except OSError:
                        open_ = False
            if open_ and sock in readable:
                try:
                    received = receive(sock)
                except ConnectionResetError:  # the run worker closed its end with our messages unread
                    received = None
                if received is None:
                    open_ = False
                    continue
                (step_key, attempt), fds = received
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    os.close(wake_r)
                    os.close(wake_w)
                    sock.close()
                    die_with_parent()
                    code = 0
                    try:
                        from multiprocessing.connection import Connection

                        self._run_child(Connection(fds[0], readable=False), step_key, attempt)
                    except BaseException:  # noqa: BLE001
                        import traceback

                        traceback.print_exc()
                        code = 1
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                for fd in fds:
                    os.close(fd)
                children.add(pid)
                send(sock, ("started", step_key, pid))
