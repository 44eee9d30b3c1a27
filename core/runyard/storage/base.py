"""The run storage interface.

A storage plugin implements :class:`RunStorage` (usually by subclassing the shared SQL implementation
in :mod:`runyard.storage.sql` and bringing an engine). Every process of a deployment — CLI, run
workers, daemon, web UI — opens its own storage object from the same instance config, so an
implementation must be safe under many concurrent processes.

Rules every implementation keeps (the conformance suite in :mod:`runyard.testing` checks them):

* a status change is a compare-and-set: :meth:`transition_run` changes the status only when the
  run's current status is one of ``expected``, and writes the accompanying events in the same
  transaction — two processes can never both move a run out of the same status;
* events get a storage-assigned, strictly increasing ``id``; :meth:`get_events` with ``after_id``
  is a cursor that never skips or repeats; writers of one run take turns, so each
  :meth:`store_events` batch stays together and ids follow commit order;
* ticks are unique per (instigator, tick_time); run keys are unique per instigator;
* keys compare exactly: run keys, tag keys and values, and key-value keys that differ only in case,
  accents or trailing spaces are different; times keep double precision; text values of many
  megabytes are kept whole;
* a new, empty database may be prepared (:meth:`check_ready`) by several processes at once;
* a lease is held by at most one holder at a time, and every acquisition bumps its fencing token;
* a queued run is claimed (:meth:`claim_queued_runs`) by exactly one caller;
* API tokens are stored as digests and revoked by compare-and-set; audit entries get a
  storage-assigned, strictly increasing ``id`` (docs/auth.md).

Waiting for changes (:meth:`wait_for_events`, :meth:`wait_for_runs`) polls by default; a backend
with notifications (Postgres ``LISTEN/NOTIFY``) overrides them and sets ``supports_notifications``.
Polling stays correct everywhere: a notification only makes a waiter look sooner.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..component import Component, ComponentContext
from ..tags import PRIORITY_TAG
from .records import (
    IN_PROGRESS_STATUSES,
    STEP_STATUS_EVENTS,
    UNFINISHED_STATUSES,
    ApiToken,
    AuditEntry,
    AuditFilter,
    BackfillRecord,
    BackfillStatus,
    Event,
    EventType,
    Lease,
    RunFilter,
    RunRecord,
    RunStatus,
    StepStats,
    StepStatus,
    Tick,
)

StorageContext = ComponentContext

#: what a :class:`ChangeSignal` says may have changed
CHANGE_EVENTS, CHANGE_RUNS, CHANGE_TICKS = "events", "runs", "ticks"
ALL_CHANGES = frozenset({CHANGE_EVENTS, CHANGE_RUNS, CHANGE_TICKS})
NO_CHANGES: frozenset[str] = frozenset()


class ChangeSignal:
    """A cheap, non-blocking answer to "did any process write since I last asked?", for one reader
    that follows many things at once (the web UI's live hub). :meth:`changed` is called every
    :attr:`interval` seconds and returns which kinds of data may have changed (:data:`ALL_CHANGES`
    when it cannot tell); the caller then re-reads storage. A false alarm costs a read, a missed
    change must never happen. This default cannot tell at all: every call answers "everything", so
    callers re-read every :attr:`interval` (polling). SQLite answers from ``PRAGMA data_version``,
    Postgres from ``LISTEN/NOTIFY``."""

    def __init__(self, interval: float):
        self.interval = interval

    def changed(self) -> frozenset[str]:
        return ALL_CHANGES

    def close(self) -> None:
        """Release what the signal holds (a connection)."""


@dataclass(frozen=True)
class TagLimit:
    """At most ``limit`` in-progress runs carrying tag ``key``: with ``value`` set, only runs whose
    tag has that value count; with ``per_unique_value``, each distinct value of the tag gets its own
    ``limit``; with neither, every run carrying the key counts against one shared ``limit``."""

    key: str
    limit: int
    value: str | None = None
    per_unique_value: bool = False

    def bucket(self, tags: Mapping[str, Any]) -> str | None:
        """The counter a run with ``tags`` uses under this limit, or None when it is not limited."""
        if self.key not in tags:
            return None
        actual = str(tags[self.key])
        if self.per_unique_value:
            return actual
        if self.value is not None and actual != self.value:
            return None
        return ""


@dataclass(frozen=True)
class ClaimLimits:
    """Concurrency limits a queue claim respects, counted inside the claiming transaction.

    ``max_in_progress``: at most this many runs STARTING, STARTED or CANCELING at once (None or a
    negative number: unlimited). ``tag_limits``: see :class:`TagLimit`. A queued run that would
    break a limit is skipped, not waited for: runs behind it may still be claimed."""

    max_in_progress: int | None = None
    tag_limits: Sequence[TagLimit] = ()


def select_within_limits(candidates: Sequence[tuple[str, Mapping[str, Any]]],
                         in_progress: Sequence[Mapping[str, Any]], limits: ClaimLimits | None,
                         n: int) -> list[str]:
    """Pick up to ``n`` of ``candidates`` ((run_id, tags) in queue order) that fit ``limits`` given
    the tags of the runs already in progress. Shared by every storage's claim, which calls it with
    what it read inside its claiming transaction."""
    if limits is None:
        return [rid for rid, _ in candidates[:n]]
    budget = n
    if limits.max_in_progress is not None and limits.max_in_progress >= 0:
        budget = min(budget, limits.max_in_progress - len(in_progress))
    counts: list[dict[str, int]] = []
    for tl in limits.tag_limits:
        c: dict[str, int] = {}
        for tags in in_progress:
            b = tl.bucket(tags)
            if b is not None:
                c[b] = c.get(b, 0) + 1
        counts.append(c)
    picked: list[str] = []
    for rid, tags in candidates:
        if len(picked) >= budget:
            break
        buckets = [tl.bucket(tags) for tl in limits.tag_limits]
        if any(b is not None and counts[i].get(b, 0) >= limits.tag_limits[i].limit
               for i, b in enumerate(buckets)):
            continue
        for i, b in enumerate(buckets):
            if b is not None:
                counts[i][b] = counts[i].get(b, 0) + 1
        picked.append(rid)
    return picked


def run_priority(tags: dict[str, Any] | None) -> int:
    """The queue priority a run's tags give it (``runyard/priority``; 0 when absent or not an int)."""
    raw = (tags or {}).get(PRIORITY_TAG)
    if raw is None:
        return 0
    try:
        value = int(str(raw).strip())
    except ValueError:
        return 0
    return max(-(2**31), min(2**31 - 1, value))


class RunStorage(Component, ABC):
    #: storage can wake waiters by notification rather than polling (Postgres LISTEN/NOTIFY)
    supports_notifications: ClassVar[bool] = False
    #: seconds between looks when :meth:`wait_for_events` / :meth:`wait_for_runs` poll
    poll_interval: float = 0.1
    #: at most how long one call of this process waits for an unavailable database (reconnect
    #: retries) before raising :class:`~runyard.errors.StorageError`; None: the storage's own setting
    #: (Postgres: ``reconnect_timeout``). Interactive processes (the web UI) set it low so a request
    #: answers in seconds during an outage; run workers keep the default and ride outages out.
    max_wait_seconds: float | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def check_ready(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`runyard.errors.StorageError` if storage is unreachable or needs migrating."""

    @abstractmethod
    def migrate(self) -> tuple[str | None, str]:
        """Bring the schema to the newest revision; return (revision before, revision after)."""

    @abstractmethod
    def schema_revision(self) -> str | None:
        """The schema revision stored in the database (None for an empty database)."""

    def dispose(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called at process exit and in a forked child before reuse."""

    def describe(self) -> dict[str, Any]:
        """Facts for ``runyard instance info`` (no secrets)."""
        return {"storage": self.name}

    # ---- runs ------------------------------------------------------------------------------------
    @abstractmethod
    def add_run(self, run: RunRecord, events: Sequence[Event] = ()) -> RunRecord:
        """Insert a new run with its tags (and optional first events) in one transaction."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def get_runs(self, filters: RunFilter | None = None, limit: int | None = None,
                 cursor: str | None = None) -> list[RunRecord]:
        """Newest first. ``cursor`` is the run_id after which to continue."""

    @abstractmethod
    def count_runs(self, filters: RunFilter | None = None) -> int: ...

    def count_runs_by_status(self, filters: RunFilter | None = None) -> dict[RunStatus, int]:
        """How many runs matching ``filters`` each status has (statuses without runs left out): the
        runs list's status chips. SQL backends answer in one grouped query; this default counts
        status by status."""
        counts = {}
        for status in RunStatus:
            if filters is not None and filters.statuses and status not in filters.statuses:
                continue
            n = self.count_runs(replace(filters or RunFilter(), statuses=[status]))
            if n:
                counts[status] = n
        return counts

    def get_last_runs_by_tag(self, tag_key: str, job_name: str | None = None,
                             values: Iterable[str] | None = None) -> dict[str, RunRecord]:
        """The newest run (``created_at``, then run id) per value of tag ``tag_key``: ``{value: run}``
        over the runs carrying it, only runs of ``job_name`` and only ``values`` when given (None:
        any). A partition's status is its last run's (``runyard/partition``, docs/partitions.md);
        a backfill's progress reads it too. Not abstract: a storage written before partitions keeps
        working for everything else. SQL backends answer in one query from the tag index."""
        raise NotImplementedError(f"{type(self).__name__} does not look up the last runs by tag")

    def ping(self) -> None:
        """Raise :class:`~runyard.errors.StorageError` unless storage answers. Cheap whatever the
        number of runs (``/healthz`` calls it on every probe): SQL backends run ``SELECT 1``; this
        default reads the schema revision."""
        self.schema_revision()

    @abstractmethod
    def delete_run(self, run_id: str) -> bool:
        """Delete a run, its tags and its events. Return False if it did not exist."""

    @abstractmethod
    def transition_run(self, run_id: str, expected: Iterable[RunStatus], new_status: RunStatus,
                       events: Sequence[Event] = (), **fields: Any) -> RunStatus | None:
        """Compare-and-set the run's status and write ``events`` in the same transaction.

        ``fields`` may set ``start_time``, ``end_time`` and ``launcher_info``. Returns the status the
        run had before the change (a truthy value), or None, writing nothing, when the current status
        is not in ``expected`` or the run does not exist.
        """

    @abstractmethod
    def update_run(self, run_id: str, *, launcher_info: dict[str, Any] | None = None,
                   tags: dict[str, str] | None = None) -> None:
        """Merge launcher info and tags into a run without touching its status."""

    def claim_queued_runs(self, claimer: str, limit: int, *, run_ids: Sequence[str] | None = None,
                          fence: Lease | None = None, limits: ClaimLimits | None = None) -> list[RunRecord]:
        """Claim up to ``limit`` QUEUED runs for ``claimer``: each moves QUEUED -> STARTING with its
        ``RUN_STARTING`` event (``data={"claimed_by": claimer}``) in one transaction, so a run is
        claimed by exactly one caller however many race. Highest ``runyard/priority`` tag first, then
        oldest (``created_at``). ``run_ids`` restricts the claim to those runs (e.g. the ones a daemon
        picked under tag concurrency limits). With ``fence``, nothing is claimed unless that lease is
        still held by its holder with its token (a deposed daemon claims nothing). With ``limits``
        (:class:`ClaimLimits`), runs already in progress are counted and only runs that fit are
        claimed; SQL backends count inside the claiming transaction and serialize limited claims,
        so racing claimers never exceed a limit together. (This generic default counts outside any
        transaction: a backend without transactions is only as safe as a single claimer.)

        Returns the claimed runs, now STARTING, in claim order; the caller launches them. This
        default works on any storage through :meth:`transition_run`; SQL backends claim in one
        transaction (Postgres: ``FOR UPDATE SKIP LOCKED``, so claimers never wait on each other).
        """
        if limit <= 0 or (fence is not None and not self._lease_is_held(fence)):
            return []
        wanted = set(run_ids) if run_ids is not None else None
        queued = [r for r in self.get_runs(RunFilter(statuses=[RunStatus.QUEUED]))
                  if wanted is None or r.run_id in wanted]
        queued.sort(key=lambda r: (-run_priority(r.tags), r.created_at, r.run_id))
        if limits is not None:
            running = [r.tags for r in self.get_runs(RunFilter(statuses=list(IN_PROGRESS_STATUSES)))]
            keep = set(select_within_limits([(r.run_id, r.tags) for r in queued], running, limits, limit))
            queued = [r for r in queued if r.run_id in keep]
        claimed: list[RunRecord] = []
        for run in queued:
            if len(claimed) >= limit:
                break
            event = claim_event(run.run_id, claimer)
            if self.transition_run(run.run_id, [RunStatus.QUEUED], RunStatus.STARTING, [event]):
                got = self.get_run(run.run_id)
                if got is not None:
                    claimed.append(got)
        return claimed

    # ---- waiting for changes ---------------------------------------------------------------------
    def wait_for_events(self, run_id: str, after_id: int | None, timeout: float) -> bool:
        """Block until ``run_id`` has an event with id > ``after_id`` (any event when None), or
        ``timeout`` seconds pass. Returns whether there is one; True at once if there already is.
        Safe to call from several threads. Polls every :attr:`poll_interval` by default."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self.get_events(run_id, after_id=after_id, limit=1):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.poll_interval, left))

    def wait_for_runs(self, timeout: float) -> bool:
        """Block until a run is added, changes status or an unfinished run is deleted, or ``timeout``
        seconds pass; return True on a change (possibly spurious: callers re-read), False on timeout.

        Changes are seen from this storage object's first call on (call it once with ``timeout=0`` to
        start watching): what the run queue and live run lists wait on. Polls a cheap summary of the
        unfinished runs every :attr:`poll_interval` by default."""
        deadline = time.monotonic() + max(0.0, timeout)
        previous = getattr(self, "_runs_seen", None)
        while True:
            current = self._runs_signature()
            self._runs_seen = current
            if previous is not None and current != previous:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.poll_interval, left))

    def _runs_signature(self) -> Any:
        """What :meth:`wait_for_runs` compares between polls; backends may compute it cheaper."""
        runs = self.get_runs(RunFilter(statuses=list(UNFINISHED_STATUSES)))
        return frozenset((r.run_id, str(r.status), r.updated_at) for r in runs)

    # ---- live feeds: one reader following many runs at once (the web UI's live hub) --------------
    def change_signal(self) -> ChangeSignal:
        """A new :class:`ChangeSignal` for this storage (the caller closes it). This default polls:
        it says "everything may have changed" every :attr:`poll_interval`."""
        return ChangeSignal(self.poll_interval)

    def get_events_for_runs(self, cursors: Mapping[str, int | None], limit: int | None = None) -> list[Event]:
        """The events of several runs, each after its own exclusive cursor (None: from its first
        event), in id order, at most ``limit``. For each run the answer is a prefix of what it has
        after its cursor, so a caller advancing per-run cursors never skips one, whatever order
        different runs' writers commit in (which a single cursor over every run could not promise).
        This default asks run by run; SQL backends answer in one query."""
        events: list[Event] = []
        for run_id, after_id in cursors.items():
            events.extend(self.get_events(run_id, after_id=after_id, limit=limit))
        events.sort(key=lambda e: e.id or 0)
        return events[:limit] if limit else events

    def get_run_statuses(self, run_ids: Iterable[str] | None = None,
                         statuses: Iterable[RunStatus] | None = None) -> dict[str, tuple[RunStatus, float]]:
        """``run_id -> (status, updated_at)`` of the runs among ``run_ids`` and with one of
        ``statuses`` (None: no restriction on that side), without configs or tags: what the live
        hub reads on every change. This default reads whole runs."""
        wanted = list(run_ids) if run_ids is not None else None
        if wanted is not None and not wanted:
            return {}
        runs = self.get_runs(RunFilter(run_ids=wanted, statuses=list(statuses) if statuses is not None else None))
        return {r.run_id: (r.status, r.updated_at) for r in runs}

    def get_recent_ticks(self, after_id: int | None, ids: Iterable[int] = (), limit: int = 500) -> list[Tick]:
        """Ticks of every schedule and sensor with an id above ``after_id`` (None: only the newest
        tick, to start from), plus the ticks with one of ``ids`` (ones still running, whose updates
        the caller waits for), in id order, at most ``limit``. Backends that cannot list ticks across
        instigators raise NotImplementedError (live tick updates then stay off)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list ticks across instigators")

    # ---- events ----------------------------------------------------------------------------------
    @abstractmethod
    def store_events(self, events: Sequence[Event]) -> None:
        """Append events in one transaction, in the given order."""

    def store_event(self, event: Event) -> None:
        self.store_events([event])

    @abstractmethod
    def get_events(self, run_id: str, after_id: int | None = None, limit: int | None = None,
                   event_types: Iterable[str] | None = None,
                   step_key: str | None = None, before_id: int | None = None) -> list[Event]:
        """A run's events in order; ``after_id`` is an exclusive cursor. ``before_id`` (exclusive)
        pages backwards: with ``limit``, the *last* ``limit`` events below it, still in order — how a
        page opens on the newest events of a long run and loads older ones on demand."""

    def get_step_stats(self, run_id: str, step_keys: Iterable[str] | None = None) -> list[StepStats]:
        """Each step's status, attempt count, first start, last end and last error in one run, in
        the order steps first appeared. Attempts are counted here, in storage, so any process (a
        retried step's new process, a resumed run) sees the same number. Backends may override this
        default, which reads the step events."""
        wanted = set(step_keys) if step_keys is not None else None
        stats: dict[str, StepStats] = {}
        for e in self.get_events(run_id, event_types=list(STEP_STATUS_EVENTS)):
            if e.step_key is None or (wanted is not None and e.step_key not in wanted):
                continue
            apply_step_event(stats, e.step_key, str(e.event_type), e.timestamp,
                             e.data.get("error") if e.data else None)
        return list(stats.values())

    def get_recent_step_stats(self, job_name: str, runs: int = 20) -> dict[str, list[StepStats]]:
        """:meth:`get_step_stats` of each of the ``runs`` newest runs of ``job_name``, keyed by run
        id, newest run first; a run without step events is left out. The job page reads step
        durations from it. This default asks run by run; SQL backends answer in one query."""
        out: dict[str, list[StepStats]] = {}
        for run in self.get_runs(RunFilter(job_name=job_name), limit=runs):
            steps = self.get_step_stats(run.run_id)
            if steps:
                out[run.run_id] = steps
        return out

    # ---- what the metrics read (docs/metrics.md) -----------------------------------------------
    def get_queue_and_event_marks(self) -> tuple[float | None, int | None] | None:
        """(``created_at`` of the oldest QUEUED run, the highest event id), each None when there is
        none, for the queue-age and events-written metrics, read on every scrape. None (this
        default) says the storage cannot answer both cheaply: those two metrics are then left out.
        SQL backends answer through indexes."""
        return None

    def get_finished_runs_between(self, after_id: int, up_to_id: int,
                                  limit: int) -> list[tuple[int, str, str]] | None:
        """(event id, run id, job name) of the runs whose final event (``RUN_SUCCESS``,
        ``RUN_FAILURE``, ``RUN_CANCELED``) has an id in (``after_id``, ``up_to_id``], in id order, at
        most ``limit``: the daemon's metrics count finished runs from it. None (this default) when the
        storage cannot answer it cheaply (a range of the event ids, whatever the number stored)."""
        return None

    # ---- schedules and sensors -------------------------------------------------------------------
    @abstractmethod
    def get_instigator_state(self, name: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def set_instigator_state(self, name: str, kind: str, status: str,
                             data: dict[str, Any] | None = None) -> None: ...

    @abstractmethod
    def create_tick(self, tick: Tick) -> Tick | None:
        """Record a tick; return None if one already exists for (instigator, tick_time)."""

    @abstractmethod
    def update_tick(self, tick: Tick) -> None: ...

    @abstractmethod
    def get_ticks(self, instigator: str, limit: int = 20, before_id: int | None = None,
                  after_id: int | None = None) -> list[Tick]:
        """Newest first (by tick time, then id). ``before_id`` / ``after_id`` are exclusive cursors
        (a tick's id): the ``limit`` ticks older than that tick, or the ``limit`` ticks just newer
        than it (still newest first) — how the web UI pages a long tick history both ways."""

    def get_instigator_states(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every stored schedule and sensor state (``kind`` to keep one kind), as
        :meth:`get_instigator_state` answers each, sorted by name: what is known of an instigator
        while the code location that defines it fails to load."""
        raise NotImplementedError(f"{type(self).__name__} cannot list instigator states")

    @abstractmethod
    def claim_run_key(self, instigator: str, run_key: str, run_id: str) -> bool:
        """Reserve a run key for an instigator; False if it was used before by another run (claiming
        it again for the run that holds it answers True: a retried tick's claim)."""

    # ---- daemon: heartbeats and leases -----------------------------------------------------------
    @abstractmethod
    def heartbeat(self, daemon_id: str, loop: str, info: dict[str, Any] | None = None) -> None: ...

    @abstractmethod
    def get_heartbeats(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> Lease | None:
        """Take or renew a lease. Renewing keeps the token; taking it over bumps it."""

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease | None:
        """Extend ``lease`` only if it is still held by its holder with its token and has not expired
        (a fenced renewal: it never takes a lease over). Returns the renewed lease or None when lost.
        This default goes through :meth:`acquire_lease`; SQL backends do it in one guarded UPDATE."""
        if not self._lease_is_held(lease):
            return None
        renewed = self.acquire_lease(lease.name, lease.holder, ttl_seconds)
        if renewed is None or renewed.token != lease.token:
            return None
        return renewed

    def _lease_is_held(self, lease: Lease) -> bool:
        current = self.get_lease(lease.name)
        return (current is not None and current.holder == lease.holder and current.token == lease.token
                and current.expires_at >= time.time())

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> bool: ...

    @abstractmethod
    def get_lease(self, name: str) -> Lease | None: ...

    # ---- key-value -------------------------------------------------------------------------------
    @abstractmethod
    def kv_get(self, key: str) -> str | None: ...

    @abstractmethod
    def kv_set(self, key: str, value: str) -> None: ...

    # ---- API tokens (docs/auth.md) ---------------------------------------------------------------
    # Not abstract: a storage written before tokens existed keeps working for everything else, and
    # says plainly what it lacks when tokens are used.
    def add_api_token(self, token: ApiToken) -> None:
        """Store a new token (ids are unique; names may repeat)."""
        raise NotImplementedError(f"{type(self).__name__} does not store API tokens")

    def get_api_token(self, token_id: str) -> ApiToken | None:
        """The token with that id, revoked or expired ones included; None when unknown."""
        raise NotImplementedError(f"{type(self).__name__} does not store API tokens")

    def list_api_tokens(self, include_revoked: bool = False) -> list[ApiToken]:
        """Tokens newest first (by ``created_at``, then id); revoked ones only with ``include_revoked``.
        Expired tokens are listed: they are still there until revoked."""
        raise NotImplementedError(f"{type(self).__name__} does not store API tokens")

    def revoke_api_token(self, token_id: str, when: float) -> bool:
        """Mark a token revoked at ``when``; False, changing nothing, when it is unknown or already
        revoked (a compare-and-set: of two racing revokes, one answers True)."""
        raise NotImplementedError(f"{type(self).__name__} does not store API tokens")

    def touch_api_token(self, token_id: str, when: float) -> None:
        """Record that the token was used at ``when`` (``last_used_at`` never goes backwards)."""
        raise NotImplementedError(f"{type(self).__name__} does not store API tokens")

    # ---- the audit log (docs/auth.md) ------------------------------------------------------------
    def add_audit_entry(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry``; return it with its storage-assigned ``id`` (strictly increasing). A value
        longer than its column (SQL storages: actor and location 255 characters, action 128, via,
        code and remote address 64, role 16) is cut to it rather than refused."""
        raise NotImplementedError(f"{type(self).__name__} does not store audit entries")

    def get_audit_entries(self, filters: AuditFilter | None = None, limit: int = 50,
                          before_id: int | None = None) -> list[AuditEntry]:
        """Newest first (id order), at most ``limit``, only those matching ``filters``; ``before_id``
        is an exclusive cursor for the next, older page."""
        raise NotImplementedError(f"{type(self).__name__} does not store audit entries")

    def delete_audit_entries(self, before: float) -> int:
        """Delete entries with a timestamp before ``before`` (retention); return how many."""
        raise NotImplementedError(f"{type(self).__name__} does not store audit entries")

    # ---- backfills (docs/backfills.md) -----------------------------------------------------------
    # Not abstract, like tokens: a storage written before backfills keeps working for everything else.
    def add_backfill(self, backfill: BackfillRecord) -> BackfillRecord:
        """Store a new backfill (ids are unique) and return it with ``updated_at`` set."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def get_backfill(self, backfill_id: str) -> BackfillRecord | None:
        """The backfill with that id, or None."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def get_backfills(self, statuses: Iterable[BackfillStatus] | None = None, limit: int | None = None,
                      cursor: str | None = None, job_name: str | None = None,
                      locations: Sequence[str] | None = None) -> list[BackfillRecord]:
        """Backfills newest first (``created_at``, then id), only those with one of ``statuses``, of
        ``job_name``, of one of ``locations`` (each None: any); ``cursor`` is the id of the last
        backfill of the previous page (exclusive)."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def update_backfill(self, backfill_id: str, status: BackfillStatus, *,
                        expected: Iterable[BackfillStatus] | None = None, error: str | None = None) -> bool:
        """Set the backfill's status (and ``error`` when given), only when its current status is one
        of ``expected`` (None: any) — a compare-and-set. False, changing nothing, when it is not or
        the backfill does not exist."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def submit_backfill_runs(self, backfill_id: str, expected_submitted: int, runs: Sequence[RunRecord],
                             events: Sequence[Event] = (), *, fence: Lease | None = None) -> bool:
        """In ONE transaction: move the backfill's ``submitted`` cursor from ``expected_submitted`` to
        ``expected_submitted + len(runs)`` (COMPLETED when that is every partition), insert ``runs``
        with their tags and write ``events`` (their ``RUN_ENQUEUED`` events). Only when the backfill
        is REQUESTED with exactly that cursor — and, with ``fence``, that lease is still held by its
        holder with its token; otherwise nothing is written and the answer is False. So a daemon that
        lost its lease, or that retries a batch another daemon already made, creates no run twice,
        and a canceled backfill gets no new run."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")


def claim_event(run_id: str, claimer: str) -> Event:
    """The RUN_STARTING event a queue claim writes with each claimed run."""
    return Event(run_id=run_id, event_type=EventType.RUN_STARTING,
                 message=f"Run claimed from the queue by {claimer}.", data={"claimed_by": claimer})


def apply_step_event(stats: dict[str, StepStats], step_key: str, event_type: str, timestamp: float,
                     error: str | None) -> None:
    """Fold one step event into ``stats`` (shared by every storage's ``get_step_stats``)."""
    st = stats.get(step_key)
    if st is None:
        st = stats[step_key] = StepStats(step_key, StepStatus.STARTED)
    st.status = STEP_STATUS_EVENTS[event_type]
    if event_type in (EventType.STEP_START, EventType.STEP_RESTARTED):
        st.attempts += 1
        if st.start_time is None:
            st.start_time = timestamp
        st.end_time = None
    elif event_type in (EventType.STEP_SUCCESS, EventType.STEP_FAILURE):
        st.end_time = timestamp
        st.error = error if event_type == EventType.STEP_FAILURE else None
