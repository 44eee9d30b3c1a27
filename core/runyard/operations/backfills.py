"""Backfills: launch, cancel, retry and read progress (docs/backfills.md). What the CLI
(``runyard backfill``), GraphQL and the web UI call.

Launching stores one :class:`~runyard.storage.records.BackfillRecord` (status REQUESTED) after
checking, on the job's snapshot alone (no user code runs here), that the job is partitioned and that
every key exists; the daemon's backfill loop (:mod:`runyard.daemon.backfills`) then creates the
runs. Canceling moves the backfill to CANCELING — from then on no run is created for it, as the
daemon's batch is a compare-and-set on a REQUESTED backfill — then cancels its runs still QUEUED (or
NOT_STARTED) and marks it CANCELED; runs already launched go on (``runyard run terminate`` stops
them). Retrying makes a new backfill of the partitions whose newest run in the old one ended FAILURE
or CANCELED, or that never got a run because the old one was canceled or failed first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..storage.records import (
    PENDING_STATUSES,
    BackfillRecord,
    BackfillStatus,
    RunFilter,
    RunRecord,
    RunStatus,
)
from ..tags import BACKFILL_TAG, PARTITION_TAG, check_user_tags
from .errors import NotFoundError, OperationError

if TYPE_CHECKING:  # pragma: no cover
    from ..codeserver.snapshot import JobSnapshot
    from ..instance.instance import Instance
    from ..storage.base import RunStorage
    from ..workspace.workspace import CodeLocation

#: run statuses whose partitions "retry failed partitions" runs again
RETRIED_STATUSES = frozenset({RunStatus.FAILURE, RunStatus.CANCELED})


@dataclass(frozen=True, kw_only=True)
class BackfillProgress:
    """Where a backfill is: ``submitted`` of ``total`` partitions have a run, and how many of its runs
    are in each status (``runs``; statuses without runs left out)."""

    total: int
    submitted: int
    runs: Mapping[RunStatus, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(n for st, n in self.runs.items() if st.is_finished)

    def count(self, status: RunStatus) -> int:
        return self.runs.get(status, 0)

    def to_dict(self) -> dict[str, object]:
        return {"total": self.total, "submitted": self.submitted, "finished": self.finished,
                "runs": {str(st): n for st, n in sorted(self.runs.items(), key=lambda kv: kv[0].value)}}


def select_partition_keys(job: JobSnapshot, *, partitions: Sequence[str] | None = None, start: str | None = None,
                          end: str | None = None, all_partitions: bool = False) -> list[str]:
    """The keys a backfill of ``job`` runs, in the job's partition order for a range or ``all``, in the
    given order for a list (duplicates dropped). Exactly one of ``partitions``, a range (``start`` and/or
    ``end``, inclusive; a missing end is the first / last key) or ``all_partitions``. Raises
    :class:`OperationError` naming the job and the key for a job without partitions or a key it lacks."""
    if job.partitions is None:
        raise OperationError(f"job '{job.name}' is not partitioned: a backfill needs a job with a partitions_def")
    chosen = [partitions is not None, start is not None or end is not None, all_partitions]
    if sum(chosen) != 1:
        raise OperationError("choose the partitions of a backfill one way: a list of keys, a range (from/to), or all")
    keys = job.partitions.get_partition_keys()
    position = {k: i for i, k in enumerate(keys)}

    def known(key: str, what: str) -> int:
        if key not in position:
            sample = ", ".join(keys[:3]) + (f", ... {keys[-1]}" if len(keys) > 3 else "")
            raise OperationError(f"{what}: job '{job.name}' has no partition '{key}' "
                                 f"({len(keys)} partitions: {sample or 'none yet'})")
        return position[key]

    if all_partitions:
        selected = list(keys)
    elif partitions is not None:
        selected = list(dict.fromkeys(str(k) for k in partitions))
        for key in selected:
            known(key, "partition")
    else:
        first = known(start, "from") if start is not None else 0
        last = known(end, "to") if end is not None else len(keys) - 1
        if first > last:
            raise OperationError(f"the range {start}..{end} of job '{job.name}' is empty: '{start}' comes after "
                                 f"'{end}'")
        selected = keys[first:last + 1]
    if not selected:
        raise OperationError(f"job '{job.name}' has no partitions to backfill")
    return selected


def find_partitioned_job(locations: Iterable[CodeLocation], job_name: str,
                         location: str | None = None) -> tuple[CodeLocation, JobSnapshot]:
    """The code location (and job snapshot) of ``job_name``: in ``location`` when given, else in the
    only loaded location that has a job of that name."""
    from .workspace import find_job

    locations = list(locations)
    if location is not None:
        return find_job(locations, location, job_name)
    having = [loc for loc in locations if loc.snapshot is not None and job_name in loc.snapshot.jobs_by_name]
    if len(having) == 1:
        return having[0], having[0].snapshot.jobs_by_name[job_name]
    if not having:
        raise NotFoundError(f"no loaded code location has a job named '{job_name}'; locations: "
                            f"{', '.join(loc.name for loc in locations) or 'none'}")
    raise OperationError(f"job '{job_name}' is in {len(having)} code locations "
                         f"({', '.join(loc.name for loc in having)}): name one (--location)")


def launch_backfill(instance: Instance, loc: CodeLocation, job: JobSnapshot, partition_keys: Sequence[str], *,
                    tags: Mapping[str, str] | None = None, runyard_tags: Mapping[str, str] | None = None,
                    retry_of: str | None = None) -> BackfillRecord:
    """Store a REQUESTED backfill of ``job`` (of ``loc``) for ``partition_keys`` (already checked, see
    :func:`select_partition_keys`); the daemon creates its runs. ``tags`` (the user's: a reserved one
    raises :class:`~runyard.tags.ReservedTagError`) and ``runyard_tags`` (runyard's own, e.g.
    ``runyard/user``) go on every run."""
    from .launch import location_code_pointer

    check_user_tags(tags)
    if not partition_keys:
        raise OperationError(f"a backfill of job '{job.name}' needs at least one partition")
    record = BackfillRecord(backfill_id=uuid.uuid4().hex[:20], location=loc.name,
                            job_name=job.name, partition_keys=list(partition_keys),
                            code_pointer=location_code_pointer(loc),
                            tags={**(tags or {}), **(runyard_tags or {})}, retry_of=retry_of)
    return instance.storage.add_backfill(record)


def get_backfill(storage: RunStorage, backfill_id: str) -> BackfillRecord:
    backfill = storage.get_backfill(backfill_id)
    if backfill is None:
        raise NotFoundError(f"no backfill with id '{backfill_id}'")
    return backfill


def backfill_progress(storage: RunStorage, backfill: BackfillRecord) -> BackfillProgress:
    """The backfill's progress: its cursor and its runs per status (one grouped query)."""
    counts = storage.count_runs_by_status(RunFilter(tags={BACKFILL_TAG: backfill.backfill_id}))
    return BackfillProgress(total=backfill.num_partitions, submitted=backfill.submitted, runs=counts)


def partition_runs(storage: RunStorage, backfill: BackfillRecord) -> dict[str, RunRecord | None]:
    """Each partition of the backfill (in its order) and the newest run the backfill made for it —
    or a re-execution of that run, which keeps its tags — None while it has none."""
    newest: dict[str, RunRecord] = {}
    for run in storage.get_runs(RunFilter(tags={BACKFILL_TAG: backfill.backfill_id})):  # newest first
        key = run.tags.get(PARTITION_TAG)
        if key is not None and key not in newest:
            newest[key] = run
    return {key: newest.get(key) for key in backfill.partition_keys}


def cancel_backfill(instance: Instance, backfill_id: str) -> BackfillRecord:
    """Stop a backfill: no more runs are created, its QUEUED runs are canceled, runs already launched go
    on. A backfill already canceled is answered as it is; a FAILED one cannot be canceled."""
    storage = instance.storage
    backfill = get_backfill(storage, backfill_id)
    if backfill.status == BackfillStatus.CANCELED:
        return backfill
    if backfill.status == BackfillStatus.FAILED:
        raise OperationError(f"backfill {backfill_id} already failed: nothing to cancel")
    if backfill.status != BackfillStatus.CANCELING and not storage.update_backfill(
            backfill_id, BackfillStatus.CANCELING, expected=[BackfillStatus.REQUESTED, BackfillStatus.COMPLETED]):
        return cancel_backfill(instance, backfill_id)  # it changed meanwhile: look again
    finish_cancel(instance, backfill_id)
    return get_backfill(storage, backfill_id)


def finish_cancel(instance: Instance, backfill_id: str) -> int:
    """Cancel a CANCELING backfill's runs that have not started and mark it CANCELED; returns how many
    runs were canceled. Safe to repeat (the daemon finishes a cancel its caller did not)."""
    storage = instance.storage
    pending = storage.get_runs(RunFilter(tags={BACKFILL_TAG: backfill_id}, statuses=list(PENDING_STATUSES)))
    canceled = 0
    for run in pending:
        if instance.transition(run, [run.status], RunStatus.CANCELED, f"Run canceled with its backfill {backfill_id}."):
            canceled += 1
    storage.update_backfill(backfill_id, BackfillStatus.CANCELED, expected=[BackfillStatus.CANCELING])
    return canceled


def retry_backfill(instance: Instance, locations: Iterable[CodeLocation], backfill_id: str, *,
                   tags: Mapping[str, str] | None = None,
                   runyard_tags: Mapping[str, str] | None = None) -> BackfillRecord:
    """A new backfill of the old one's job, of the partitions whose newest run in it ended FAILURE or
    CANCELED, or that got no run because it was canceled or failed first. The old one's tags carry
    over (``tags`` and ``runyard_tags`` override). Raises :class:`OperationError` when there is nothing
    to retry."""
    storage = instance.storage
    old = get_backfill(storage, backfill_id)
    if not old.status.is_finished and old.status != BackfillStatus.CANCELING:
        raise OperationError(f"backfill {backfill_id} is still {old.status}: retry it once every partition has a "
                             "run (COMPLETED), or cancel it first")
    loc, job = find_partitioned_job(locations, old.job_name, old.location)
    retried = [key for key, run in partition_runs(storage, old).items()
               if (run is None and old.status != BackfillStatus.COMPLETED)
               or (run is not None and run.status in RETRIED_STATUSES)]
    if not retried:
        raise OperationError(f"backfill {backfill_id} has no failed or canceled partition to retry")
    check_user_tags(tags)
    carried = {k: v for k, v in old.tags.items() if k not in (runyard_tags or {})}
    return launch_backfill(instance, loc, job, retried, tags=None,
                           runyard_tags={**carried, **(tags or {}), **(runyard_tags or {})}, retry_of=backfill_id)
