"""The run launcher interface.

A launcher starts a run worker for a run that is STARTING and returns without waiting for it. It
records what identifies the worker (a pid, a container id, a Job name) with
``context.record_worker(...)`` — that lands in the run's ``launcher_info`` — so any process can
later terminate it or check its health.

Capability flags tell callers what they may ask: ``supports_health_check`` (run monitoring asks
whether a worker is alive), ``supports_resume`` (a run whose worker died can be resumed) and
``supports_concurrent_launch`` (the daemon's run queue may call :meth:`RunLauncher.launch_run` from
several threads at once, up to ``daemon.launch_concurrency``; without it, one launch at a time).

Failures are typed: a launch that cannot start a worker raises :class:`LaunchError` with a
``reason`` (``image_not_found``, ``create_error``...), a health check that finds the worker dead
says why in :attr:`HealthCheckResult.reason` (``oom_killed``, ``exit_code``...). The run's
``RUN_FAILURE`` event carries that reason in ``data["reason"]``, and the CLI and the web UI show it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from ..component import Component
from ..errors import RunyardError

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.records import Event, RunRecord


class LaunchError(RunyardError):
    """A launcher could not start the run's worker. ``reason`` is a short machine-readable code
    (``image_not_found``, ``network_not_found``, ``engine_unreachable``, ``create_error``...) stored
    with the run's failure; ``details`` more facts for the event's data (never secrets)."""

    def __init__(self, message: str, *, reason: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.reason = reason
        self.details = details or {}


class WorkerHealth(str, Enum):
    RUNNING = "running"
    DEAD = "dead"
    UNKNOWN = "unknown"


@dataclass
class HealthCheckResult:
    """``reason``: for a dead worker, a short code for why (``oom_killed``, ``exit_code``,
    ``killed``, ``container_removed``...), stored in the run's failure event (default: the message);
    ``details``: more facts for that event's data; ``events``: events to store with the run's final
    status (the last lines of the worker's output, say), in the same transaction."""

    health: WorkerHealth
    message: str = ""
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


@dataclass
class LaunchRunContext:
    instance: Instance
    run: RunRecord
    extra: dict[str, Any] = field(default_factory=dict)

    def record_worker(self, **info: Any) -> None:
        """Store identifying facts about the started worker on the run (never secrets)."""
        self.instance.storage.update_run(self.run.run_id, launcher_info=info)
        self.run.launcher_info.update(info)


@dataclass
class TerminateRunContext:
    instance: Instance
    run: RunRecord
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthCheckContext:
    instance: Instance
    run: RunRecord
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReconcileContext:
    """``runs``: the in-progress runs run monitoring just looked at (the launcher may look up others).
    ``removals``: what :meth:`record_removal` counted during the pass, by kind."""

    instance: Instance
    runs: list[RunRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    removals: dict[str, int] = field(default_factory=dict)

    def record_removal(self, kind: str, count: int = 1) -> None:
        """Say that the pass removed ``count`` workloads of ``kind`` (a short noun: ``container``,
        ``job``): the daemon's ``runyard_reconciler_removed_total`` metric counts them
        (docs/metrics.md)."""
        self.removals[kind] = self.removals.get(kind, 0) + count


@dataclass
class DeleteRunFilesContext:
    instance: Instance
    run: RunRecord
    extra: dict[str, Any] = field(default_factory=dict)


class RunLauncher(Component, ABC):
    supports_health_check: ClassVar[bool] = False
    supports_resume: ClassVar[bool] = False
    #: ``launch_run`` may run in several threads of one process at once, on this one launcher object
    #: (no unguarded shared state, a client that is thread-safe or made per call). The daemon then
    #: launches queued runs concurrently, at most ``daemon.launch_concurrency`` in flight; leave it
    #: False unless you checked, and the queue launches one run at a time, as before.
    supports_concurrent_launch: ClassVar[bool] = False

    def prepare(self, instance: Instance) -> None:  # noqa: B027 - optional hook
        """Called once by long-running services (daemon, web UI, benchmarks) before their first
        launch, e.g. to start a warm worker pool. Launching must also work without it."""

    @abstractmethod
    def launch_run(self, context: LaunchRunContext) -> None:
        """Start a run worker for ``context.run`` (STARTING), in its own session and process group,
        record what identifies it, and return at once (within seconds, never waiting for the run)."""

    @abstractmethod
    def terminate(self, context: TerminateRunContext) -> bool:
        """Stop the run's worker; return True if a worker was found and signalled. A worker that
        ignores the request is killed once the launcher's grace period is over. May be called in
        another process than the launch, on a new launcher object: use ``launcher_info`` only."""

    def check_run_worker_health(self, context: HealthCheckContext) -> HealthCheckResult:
        return HealthCheckResult(WorkerHealth.UNKNOWN, "this launcher cannot check worker health")

    def start_wait_reason(self, context: HealthCheckContext) -> tuple[str, str] | None:
        """Why a STARTING run's worker has not started yet, as (reason code, message) — a pod no node
        can take says ``("unschedulable", <the scheduler's message>)`` — or None. Run monitoring asks
        when the run's start timeout is over and fails the run with that reason instead of
        ``start_timeout``. Must not change anything."""
        return None

    def reconcile(self, context: ReconcileContext) -> list[str]:
        """Called by run monitoring on every pass (in the daemon that leads): clean up what the
        launcher's workers left behind — containers or Jobs of finished or unknown runs (after storing
        what is worth keeping) — and finish runs whose worker vanished. Returns one line per action
        taken, for the daemon's log; each workload removed is also reported with
        ``context.record_removal(kind)`` (the daemon's metrics count them). Must be safe to run from
        several processes at once."""
        return []

    def delete_run_files(self, context: DeleteRunFilesContext) -> None:  # noqa: B027 - optional hook
        """Delete the files this launcher wrote for ``context.run`` (e.g. its worker's log), when the
        run is deleted with its files (``runyard run delete``, retention, the web UI). The run is no
        longer in storage; a missing file is not an error. Runs in the calling process."""

    def dispose(self) -> None:  # noqa: B027 - optional hook
        """Release anything the launcher holds (pools, clients)."""
