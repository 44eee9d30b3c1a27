"""The shared SQL implementation of :class:`runyard.storage.base.RunStorage` (SQLAlchemy Core 2).

A backend plugin creates an engine and hands it to :class:`SqlRunStorage`; it may override the few
hooks to use its database's strengths: ``_transact`` / ``_query`` (retries), ``_status_select`` /
``_lease_select`` / ``_claim_select`` (row locks, ``SKIP LOCKED``), ``_insert_events`` and
``_runs_changed`` (ordering, notifications), ``_migration_lock`` and ``_after_copy``. See the
Postgres plugin for all of them. :mod:`.transfer` copies one SQL storage into another.
"""

from .storage import SqlRunStorage

__all__ = ["SqlRunStorage"]
