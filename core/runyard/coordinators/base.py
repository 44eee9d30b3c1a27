"""The run coordinator interface.

``submit_run`` receives a run stored as NOT_STARTED. A coordinator either launches it at once
(``instance.launch_run(run)``) or queues it (``QUEUED``) for the daemon to launch later under its
limits. It is called in the submitting process: CLI, web UI, or a daemon tick.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..component import Component

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.records import RunRecord


@dataclass
class SubmitRunContext:
    instance: Instance
    run: RunRecord
    extra: dict[str, Any] = field(default_factory=dict)


class RunCoordinator(Component, ABC):
    #: runs wait in QUEUED until a daemon dequeues them
    queues_runs = False

    @abstractmethod
    def submit_run(self, context: SubmitRunContext) -> RunRecord:
        """Take a NOT_STARTED run; return it as it is now (STARTING, QUEUED, ...)."""
