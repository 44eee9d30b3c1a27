"""Backoff for anything runyard retries against something that may come back: capped exponential
delays, and a deadline that says when to stop waiting.

One helper for every retry loop (STYLE.md): the run worker's event sink and status changes use it
while storage is unavailable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Backoff:
    """``first``, then ``factor`` times the previous delay, never more than ``cap`` seconds.

    :meth:`wait` sleeps the next delay (interruptible through ``stop``); :meth:`reset` starts over
    after a success, so the next failure is retried quickly again.
    """

    first: float = 0.25
    factor: float = 2.0
    cap: float = 5.0
    attempt: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * self.factor ** self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0

    def wait(self, *, deadline: float | None = None, stop: threading.Event | None = None) -> bool:
        """Sleep the next delay (cut short at ``deadline``, a ``time.monotonic()`` value). Returns
        False when ``stop`` was set meanwhile."""
        delay = self.next_delay()
        if deadline is not None:
            delay = max(0.0, min(delay, deadline - time.monotonic()))
        if stop is not None:
            return not stop.wait(delay)
        time.sleep(delay)
        return True
