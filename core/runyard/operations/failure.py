"""Why a run failed or was canceled, as the CLI (``runyard run show``) and the web UI (GraphQL
``Run.failure``, the run page) show it — read in one place so both say the same thing.

The reason is the one stored with the run's final status event: a launcher that could not start the
worker (:class:`~runyard.launchers.base.LaunchError`), a health check that found it dead
(:attr:`~runyard.launchers.base.HealthCheckResult.reason`) or run monitoring (``start_timeout``...)
put a short code in the ``RUN_FAILURE`` or ``RUN_CANCELED`` event's ``data["reason"]``. A run that
failed in its own steps has no such reason: its steps' errors say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..storage.records import EventType, RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.base import RunStorage
    from ..storage.records import RunRecord

#: the statuses whose final event may carry a reason, and that event's type
FAILURE_EVENTS = {RunStatus.FAILURE: EventType.RUN_FAILURE, RunStatus.CANCELED: EventType.RUN_CANCELED}


@dataclass(frozen=True, kw_only=True)
class RunFailure:
    """``reason``: the short code (``image_not_found``, ``oom_killed``, ``start_timeout``...);
    ``message``: what happened, in words."""

    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


def run_failure(storage: RunStorage, run: RunRecord) -> RunFailure | None:
    """The reason and message of ``run``'s failure or cancellation, from its last ``RUN_FAILURE`` or
    ``RUN_CANCELED`` event; ``None`` for a run in another status or whose event names no reason.

    The message is the event data's ``error`` (the launcher's own words), else the event's message —
    also when ``error`` only repeats the reason (launchers without reason codes store their message
    as both)."""
    event_type = FAILURE_EVENTS.get(run.status)
    if event_type is None:
        return None
    events = storage.get_events(run.run_id, event_types=[str(event_type)])
    if not events:
        return None
    data = events[-1].data or {}
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason:
        return None
    error = data.get("error")
    message = error if isinstance(error, str) and error and error != reason else events[-1].message
    return RunFailure(reason=reason, message=message)
