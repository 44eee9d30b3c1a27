"""The daemon's leader lease: one replica holds it and works, the others stand by.

The holder renews every third of the time to live with a fenced renewal
(:meth:`RunStorage.renew_lease`); a standby retries :meth:`RunStorage.acquire_lease` every second
(or a third of the ttl, if shorter) and takes over once the lease expired. Work that must not be
done twice (queue claims) is fenced by the lease token, so a deposed leader that has not noticed yet
claims nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..storage.base import RunStorage
from ..storage.records import Lease

log = logging.getLogger("runyard.daemon")

LEASE_NAME = "runyard-daemon"


class LeaseKeeper:
    def __init__(self, storage: RunStorage, holder: str, ttl_seconds: float,
                 on_change: Callable[[bool], None] | None = None, name: str = LEASE_NAME):
        self.storage = storage
        self.holder = holder
        self.ttl = ttl_seconds
        self.name = name
        self.on_change = on_change
        self._lease: Lease | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def lease(self) -> Lease | None:
        """The lease while this process believes it holds it (and it has not expired)."""
        with self._lock:
            lease = self._lease
        if lease is not None and lease.expires_at < time.time():
            return None
        return lease

    @property
    def is_leader(self) -> bool:
        return self.lease is not None

    @property
    def retry_interval(self) -> float:
        """How often :meth:`tick` should be called: a standby retries this often (so it takes over
        at most this long after the lease expired); the holder renews every third of the ttl."""
        return max(0.05, min(1.0, self.ttl / 3))

    def tick(self) -> bool:
        """Renew the lease when held (once a third of the ttl passed), else try to take it. Returns
        whether it is held now."""
        was = self._lease is not None
        if was and self._lease.expires_at - time.time() > self.ttl * 2 / 3:
            return True  # renewed less than a third of the ttl ago
        try:
            current = self._lease
            lease = (self.storage.renew_lease(current, self.ttl) if current is not None
                     else self.storage.acquire_lease(self.name, self.holder, self.ttl))
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - storage down: keep the lease until it expires
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("daemon %s: lease %s failed: %s", self.holder, "renewal" if was else "acquisition", exc)
            lease = self._lease if self._lease is not None and self._lease.expires_at > time.time() else None
        with self._lock:
            self._lease = lease
        now = lease is not None
        if now != was:
            log.info("daemon %s %s the lease%s", self.holder, "took" if now else "lost",
                     f" (token {lease.token})" if lease else "")
            if self.on_change is not None:
                self.on_change(now)
        return now

    def release(self) -> None:
        with self._lock:
            held, self._lease = self._lease, None
        if held is not None:
            try:
                self.storage.release_lease(self.name, self.holder)
            except Exception as exc:  # noqa: BLE001
                log.warning("daemon %s: releasing the lease failed: %s", self.holder, exc)
