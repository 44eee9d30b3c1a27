"""A stop that a signal handler may request: what ``runyard dev|daemon|webui`` and ``runyard
code-server`` wait on in their main thread until SIGINT or SIGTERM.

A Python signal handler runs in the main thread between any two of its lines, possibly while that
thread holds a lock. ``threading.Event.set()`` takes the Event's lock, which the main thread itself
holds for a moment on every ``Event.wait()`` poll: a signal landing there made the handler wait
for a lock its own thread held, and the command hung for good on Ctrl-C. :class:`StopRequest`
takes no lock to be set: a flag, and a byte written to a pipe that its waiters watch.
"""

from __future__ import annotations

import os
import select


class StopRequest:
    """Set once (from a signal handler, or from any thread); waited for by any number of threads.
    :meth:`close` its pipe when done (setting it afterwards still sets the flag)."""

    def __init__(self) -> None:
        self._requested = False
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)

    def set(self) -> None:
        self._requested = True
        fd = self._write
        if fd >= 0:
            try:
                os.write(fd, b"x")  # every waiter's select() returns at once; nothing ever reads it
            except OSError:  # the pipe is full (waiters are awake already) or closed meanwhile
                pass

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float) -> bool:
        """Return once the stop is requested or ``timeout`` seconds passed; whether it is requested."""
        if not self._requested and self._read >= 0:
            try:
                select.select([self._read], [], [], timeout)
            except (OSError, ValueError):  # closed by another thread meanwhile: asked to stop, then
                pass
        return self._requested

    def close(self) -> None:
        fds, self._read, self._write = (self._read, self._write), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
