"""The run launcher interface.

A launcher starts a run worker for a run that is STARTING and returns without waiting for it. It
records what identifies the worker (a pid, a container id, a Job name) with
``context.record_worker(...)`` — that lands in the run's ``launcher_info`` — so any process can
later terminate it or check its health.

Capability flags tell callers what they may ask: ``supports_health_check`` (run monitoring asks
whether a worker is alive) and ``supports_resume`` (a run whose worker died can be resumed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from ..component import Component

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.records import RunRecord


class WorkerHealth(str, Enum):
    RUNNING = "running"
    DEAD = "dead"
    UNKNOWN = "unknown"


@dataclass
class HealthCheckResult:
    health: WorkerHealth
    message: str = ""


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
class DeleteRunFilesContext:
    instance: Instance
    run: RunRecord
    extra: dict[str, Any] = field(default_factory=dict)


class RunLauncher(Component, ABC):
    supports_health_check: ClassVar[bool] = False
    supports_resume: ClassVar[bool] = False

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

    def delete_run_files(self, context: DeleteRunFilesContext) -> None:  # noqa: B027 - optional hook
        """Delete the files this launcher wrote for ``context.run`` (e.g. its worker's log), when the
        run is deleted with its files (``runyard run delete``, retention, the web UI). The run is no
        longer in storage; a missing file is not an error. Runs in the calling process."""

    def dispose(self) -> None:  # noqa: B027 - optional hook
        """Release anything the launcher holds (pools, clients)."""
