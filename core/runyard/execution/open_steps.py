"""Steps a run leaves unfinished when it ends.

A step is open from its ``STEP_START`` (or ``STEP_RESTARTED``) until a ``STEP_SUCCESS``,
``STEP_FAILURE`` or ``STEP_SKIPPED``; a step waiting for a retry (``STEP_UP_FOR_RETRY``) is open too.
A run that ends any other way than SUCCESS — canceled, crashed, its worker dead — closes every open
step with a ``STEP_FAILURE`` that says why, written in the same transaction as the run's final
status, so no finished run shows a step as still running.

The run worker keeps count as events pass (:class:`OpenSteps`, no query); whoever finishes a run
whose worker is gone reads the step events from storage (:func:`open_steps_in_storage`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..storage.records import Event, EventType, StepStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.base import RunStorage

_OPENING = frozenset({EventType.STEP_START, EventType.STEP_RESTARTED, EventType.STEP_UP_FOR_RETRY})
_CLOSING = frozenset({EventType.STEP_SUCCESS, EventType.STEP_FAILURE, EventType.STEP_SKIPPED})


class OpenSteps:
    """An event listener that tracks which steps are open, in the order they opened."""

    def __init__(self) -> None:
        self._open: dict[str, None] = {}

    def __call__(self, event: Event) -> None:
        if event.step_key is None:
            return
        if event.event_type in _OPENING:
            self._open[event.step_key] = None
        elif event.event_type in _CLOSING:
            self._open.pop(event.step_key, None)

    @property
    def keys(self) -> list[str]:
        return list(self._open)


def open_steps_in_storage(storage: RunStorage, run_id: str) -> list[str]:
    return [st.step_key for st in storage.get_step_stats(run_id)
            if st.status in (StepStatus.STARTED, StepStatus.RETRY)]


def closing_events(run_id: str, step_keys: list[str], reason: str, cause: str) -> list[Event]:
    """One ``STEP_FAILURE`` per open step. ``reason`` completes "did not finish: ..."; ``cause`` is a
    short machine-readable word (``run_canceled``, ``run_failed``, ``run_worker_died``)."""
    return [Event(run_id=run_id, event_type=EventType.STEP_FAILURE, step_key=key, level="ERROR",
                  message=f"Step '{key}' did not finish: {reason}.",
                  data={"error": reason, "reason": cause}) for key in step_keys]
