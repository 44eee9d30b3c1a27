"""Plain records that storage reads and writes. No SQL here: plugins and the CLI share these."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - runyard.auth is imported when a token is made (not by run workers)
    from ..auth import Role


class RunStatus(str, Enum):
    NOT_STARTED = "NOT_STARTED"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    STARTED = "STARTED"
    CANCELING = "CANCELING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELED = "CANCELED"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATUSES

    def __str__(self) -> str:
        return self.value


# The status sets, defined here once; everything else imports them.
#: a run in one of these never changes again
FINISHED_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED})
#: runs that hold a worker (or are about to): what a queue's concurrency limits count and what a
#: health check or a terminate has a worker to talk to
IN_PROGRESS_STATUSES = frozenset({RunStatus.STARTING, RunStatus.STARTED, RunStatus.CANCELING})
#: created but not yet handed to a launcher: cancelled without a worker to stop
PENDING_STATUSES = frozenset({RunStatus.NOT_STARTED, RunStatus.QUEUED})
#: everything not finished (pending or in progress)
UNFINISHED_STATUSES = PENDING_STATUSES | IN_PROGRESS_STATUSES


class TickStatus(str, Enum):
    """A schedule or sensor tick: ``STARTED`` while it is evaluated, then how it ended."""

    STARTED = "STARTED"
    SUCCESS = "SUCCESS"  # at least one run created
    SKIPPED = "SKIPPED"  # no run requested, or every run key already used
    FAILURE = "FAILURE"

    def __str__(self) -> str:
        return self.value


class InstigatorStatus(str, Enum):
    """Whether a schedule or sensor is on."""

    RUNNING = "RUNNING"
    STOPPED = "STOPPED"

    def __str__(self) -> str:
        return self.value


class StepStatus(str, Enum):
    """A step's state within one run, as an executor reports it and as its events say."""

    STARTED = "STARTED"
    RETRY = "RETRY"  # failed, another attempt follows
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"  # not run because an upstream step failed

    def __str__(self) -> str:
        return self.value


class EventType(str, Enum):
    RUN_ENQUEUED = "RUN_ENQUEUED"
    RUN_STARTING = "RUN_STARTING"
    RUN_START = "RUN_START"
    RUN_SUCCESS = "RUN_SUCCESS"
    RUN_FAILURE = "RUN_FAILURE"
    RUN_CANCELING = "RUN_CANCELING"
    RUN_CANCELED = "RUN_CANCELED"
    STEP_START = "STEP_START"
    STEP_OUTPUT = "STEP_OUTPUT"
    STEP_SUCCESS = "STEP_SUCCESS"
    STEP_FAILURE = "STEP_FAILURE"
    STEP_UP_FOR_RETRY = "STEP_UP_FOR_RETRY"
    STEP_RESTARTED = "STEP_RESTARTED"
    STEP_SKIPPED = "STEP_SKIPPED"
    HANDLED_OUTPUT = "HANDLED_OUTPUT"
    LOADED_INPUT = "LOADED_INPUT"
    LOGS_CAPTURED = "LOGS_CAPTURED"
    HOOK_COMPLETED = "HOOK_COMPLETED"  # a success/failure hook ran (runyard.definitions.hooks)
    HOOK_ERRORED = "HOOK_ERRORED"  # a hook raised; the step's outcome is unchanged
    ENGINE_EVENT = "ENGINE_EVENT"
    LOG = "LOG"

    def __str__(self) -> str:
        return self.value


# The event that accompanies a transition into each status.
STATUS_EVENT = {
    RunStatus.QUEUED: EventType.RUN_ENQUEUED,
    RunStatus.STARTING: EventType.RUN_STARTING,
    RunStatus.STARTED: EventType.RUN_START,
    RunStatus.CANCELING: EventType.RUN_CANCELING,
    RunStatus.SUCCESS: EventType.RUN_SUCCESS,
    RunStatus.FAILURE: EventType.RUN_FAILURE,
    RunStatus.CANCELED: EventType.RUN_CANCELED,
}


@dataclass
class Event:
    """One entry of a run's event log. ``id`` is assigned by storage and orders all events."""

    run_id: str
    event_type: EventType
    message: str = ""
    step_key: str | None = None
    level: str = "INFO"
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "event_type": str(self.event_type),
            "timestamp": self.timestamp,
            "step_key": self.step_key,
            "level": self.level,
            "message": self.message,
            "data": self.data,
        }


@dataclass
class CodePointer:
    """Where a run worker finds the job: a python file or a module, plus the working directory."""

    python_file: str | None = None
    module: str | None = None
    attribute: str | None = None
    working_directory: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CodePointer:
        return cls(**(d or {}))

    def describe(self) -> str:
        return self.python_file or self.module or "<unknown>"


@dataclass
class RunRecord:
    run_id: str
    job_name: str
    status: RunStatus = RunStatus.NOT_STARTED
    run_config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    code_pointer: CodePointer = field(default_factory=CodePointer)
    step_keys_to_execute: list[str] | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    launcher_info: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None
    start_time: float | None = None
    end_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job_name": self.job_name,
            "status": str(self.status),
            "run_config": self.run_config,
            "tags": self.tags,
            "code_pointer": self.code_pointer.to_dict(),
            "step_keys_to_execute": self.step_keys_to_execute,
            "parent_run_id": self.parent_run_id,
            "root_run_id": self.root_run_id,
            "launcher_info": self.launcher_info,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "start_time": self.start_time,
            "end_time": self.end_time,
        }

    @property
    def duration(self) -> float | None:
        if self.start_time is None:
            return None
        return (self.end_time or time.time()) - self.start_time


@dataclass
class StepStats:
    """A step's outcome within one run, derived from its events."""

    step_key: str
    status: StepStatus
    attempts: int = 0
    start_time: float | None = None
    end_time: float | None = None
    error: str | None = None

    @property
    def duration(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        return {"step_key": self.step_key, "status": str(self.status), "attempts": self.attempts,
                "start": self.start_time, "end": self.end_time, "duration": self.duration,
                "error": self.error}


#: the step status each step event leaves behind
STEP_STATUS_EVENTS = {
    EventType.STEP_START: StepStatus.STARTED, EventType.STEP_RESTARTED: StepStatus.STARTED,
    EventType.STEP_UP_FOR_RETRY: StepStatus.RETRY, EventType.STEP_SUCCESS: StepStatus.SUCCESS,
    EventType.STEP_FAILURE: StepStatus.FAILURE, EventType.STEP_SKIPPED: StepStatus.SKIPPED,
}


@dataclass
class RunFilter:
    statuses: list[RunStatus] | None = None
    job_name: str | None = None
    tags: dict[str, str] | None = None
    run_ids: list[str] | None = None
    created_before: float | None = None  # epoch seconds, exclusive (retention)
    updated_after: float | None = None  # epoch seconds of the last change, exclusive (run retries)
    parent_run_id: str | None = None  # re-executions of this run (the run page's children)
    created_after: float | None = None  # epoch seconds, inclusive (the runs list's time range)
    #: runs carrying each of these tags, whatever its value (``launched by a schedule``, ``by hand``)
    tag_keys: list[str] | None = None
    #: runs whose ``runyard/location`` tag is one of these (a principal limited to code locations;
    #: an empty list matches no run)
    locations: list[str] | None = None


@dataclass
class Tick:
    """One evaluation of a schedule or sensor. Unique per (instigator, tick_time)."""

    instigator: str
    tick_time: float
    status: TickStatus = TickStatus.STARTED
    run_ids: list[str] = field(default_factory=list)
    run_keys: list[str] = field(default_factory=list)
    cursor: str | None = None
    skip_reason: str | None = None
    error: str | None = None
    id: int | None = None
    #: run key -> the id of the run this tick creates for it, recorded before the run is created:
    #: how a retried tick finds its own runs (never by their tags, which a user could forge)
    planned_runs: dict[str, str] = field(default_factory=dict)


class BackfillStatus(str, Enum):
    """A backfill's state. REQUESTED: the daemon is still creating its runs (``submitted`` of its
    partitions so far); COMPLETED: a run was created for every partition (the runs themselves may
    still be queued or running); CANCELING: cancel was asked, the daemon stops creating runs and
    cancels the backfill's queued ones; CANCELED: done canceling; FAILED: creating runs failed
    (``error`` says why)."""

    REQUESTED = "REQUESTED"
    COMPLETED = "COMPLETED"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"
    FAILED = "FAILED"

    @property
    def is_finished(self) -> bool:
        return self in (BackfillStatus.COMPLETED, BackfillStatus.CANCELED, BackfillStatus.FAILED)

    def __str__(self) -> str:
        return self.value


@dataclass
class BackfillRecord:
    """One backfill: a run of ``job_name`` (of code location ``location``) per partition key, in
    ``partition_keys`` order. The daemon creates the runs in batches; ``submitted`` counts the keys
    whose run exists (a cursor into ``partition_keys``, advanced in the transaction that creates a
    batch's runs). ``code_pointer`` is what the runs' workers import (the location's, when the
    backfill was launched); ``tags`` go on every run. ``retry_of``: the backfill whose failed
    partitions this one runs again. Times are epoch seconds."""

    backfill_id: str
    location: str
    job_name: str
    partition_keys: list[str]
    status: BackfillStatus = BackfillStatus.REQUESTED
    submitted: int = 0
    code_pointer: CodePointer = field(default_factory=CodePointer)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None
    error: str | None = None
    retry_of: str | None = None

    def __post_init__(self) -> None:
        self.status = BackfillStatus(self.status)

    @property
    def num_partitions(self) -> int:
        return len(self.partition_keys)

    def to_dict(self) -> dict[str, Any]:
        return {"backfill_id": self.backfill_id, "location": self.location, "job_name": self.job_name,
                "status": str(self.status), "partition_keys": list(self.partition_keys),
                "num_partitions": self.num_partitions, "submitted": self.submitted,
                "code_pointer": self.code_pointer.to_dict(), "tags": dict(self.tags),
                "created_at": self.created_at, "updated_at": self.updated_at, "error": self.error,
                "retry_of": self.retry_of}


@dataclass
class Lease:
    name: str
    holder: str
    token: int
    expires_at: float


@dataclass(frozen=True, kw_only=True)
class ApiToken:
    """An API token as storage keeps it: its ``digest`` (:func:`runyard.auth.token_digest`), never
    the token. ``locations`` limits it to those code locations (None: all). Times are epoch seconds;
    ``created_by`` is who made it (the OS user of ``runyard auth token create``)."""

    token_id: str
    name: str
    role: Role
    locations: tuple[str, ...] | None
    digest: str
    created_at: float
    created_by: str | None
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked_at: float | None = None

    def __post_init__(self) -> None:
        from ..auth import Role

        object.__setattr__(self, "role", Role.parse(self.role))
        if self.locations is not None:
            object.__setattr__(self, "locations", tuple(self.locations))

    def active(self, now: float) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class AuditResult(str, Enum):
    """How an audited action ended."""

    OK = "ok"
    REFUSED = "refused"  # not allowed: role, code location scope, read-only mode
    FAILED = "failed"  # allowed, but it did not succeed: invalid config, not found, an error

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One entry of the audit log: who (``actor``, authenticated ``via``, with ``role``) did what
    (``action``, e.g. a GraphQL mutation's name or ``token.create``) to what (``target``: run ids,
    ``location/job``, an instigator, a token id) of which code ``location``, when, and how it ended
    (``result``, with ``code`` and ``message`` when it did not succeed). ``details`` is JSON-able.
    ``id`` is assigned by storage and orders the log."""

    action: str
    actor: str
    via: str
    result: AuditResult
    timestamp: float
    role: str | None = None
    target: str | None = None
    location: str | None = None
    code: str | None = None
    message: str | None = None
    remote_addr: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "result", AuditResult(self.result))
        except ValueError:
            raise ValueError(f"audit entry result {self.result!r} is not one of "
                             f"{', '.join(r.value for r in AuditResult)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "timestamp": self.timestamp, "actor": self.actor, "via": self.via,
                "role": self.role, "action": self.action, "target": self.target, "location": self.location,
                "result": str(self.result), "code": self.code, "message": self.message,
                "remote_addr": self.remote_addr, "details": self.details}


@dataclass(frozen=True, kw_only=True)
class AuditFilter:
    """Which audit entries to read: each set field must match exactly; ``since`` (inclusive) and
    ``until`` (exclusive) bound the timestamp."""

    actor: str | None = None
    action: str | None = None
    location: str | None = None
    result: str | None = None
    since: float | None = None
    until: float | None = None
