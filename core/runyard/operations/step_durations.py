"""How long each step of a job took in its recent runs: the median and the latest, as the job page
shows them beside each op (GraphQL ``Job.stepDurations``).

Read from storage's step stats of the newest runs in one query
(:meth:`runyard.storage.base.RunStorage.get_recent_step_stats`). A step's duration is from its first
start to its last end, so retries count; a step that has not ended (running, skipped, or in a run
that was canceled) has none and is not counted.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..storage.records import StepStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.base import RunStorage

#: how many recent runs are read when the caller does not say, and at most
DEFAULT_RUNS, MAX_RUNS = 20, 200


@dataclass(frozen=True, kw_only=True)
class StepDurations:
    """One step key's durations over the runs read. ``runs``: how many of them ended the step;
    ``p50``: their median in seconds; ``latest*``: the newest of them."""

    step_key: str
    runs: int
    p50: float
    latest: float
    latest_run_id: str
    latest_status: StepStatus


def step_durations(storage: RunStorage, job_name: str, runs: int = DEFAULT_RUNS) -> list[StepDurations]:
    """Durations of each step of ``job_name`` over its ``runs`` newest runs (clamped to 1..MAX_RUNS),
    in the order steps first appear, newest run first."""
    recent = storage.get_recent_step_stats(job_name, max(1, min(int(runs), MAX_RUNS)))
    seen: dict[str, list[tuple[float, str, StepStatus]]] = {}
    for run_id, steps in recent.items():  # newest run first: the first entry of a step is its latest
        for st in steps:
            if st.duration is not None and st.status in (StepStatus.SUCCESS, StepStatus.FAILURE):
                seen.setdefault(st.step_key, []).append((st.duration, run_id, st.status))
    return [StepDurations(step_key=key, runs=len(found), p50=statistics.median(d for d, _, _ in found),
                          latest=found[0][0], latest_run_id=found[0][1], latest_status=found[0][2])
            for key, found in seen.items()]
