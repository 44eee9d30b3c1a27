"""The run coordinator interface.

``submit_run`` receives a run stored as NOT_STARTED. A coordinator either launches it at once
(``instance.launch_run(run)``) or queues it (``QUEUED``) for the daemon to launch later under its
limits. It is called in the submitting process: CLI, web UI, or a daemon tick.

A coordinator that queues sets ``queues_runs``; the daemon's queue loop then claims its runs under
:meth:`RunCoordinator.claim_limits` and looks at the queue at least every
:attr:`RunCoordinator.dequeue_interval` seconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..component import Component

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.base import ClaimLimits
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

    def claim_limits(self) -> ClaimLimits | None:
        """With ``queues_runs``: the limits the daemon's queue claims respect (None: no limit)."""
        return None

    @property
    def dequeue_interval(self) -> float:
        """With ``queues_runs``: the longest the daemon waits between two looks at the queue, in
        seconds (where storage notifies, a submission wakes it sooner)."""
        return 1.0
