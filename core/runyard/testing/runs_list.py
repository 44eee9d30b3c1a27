"""A known population of runs for checking a SQL storage's runs-list queries at scale.

The runs list (web UI and GraphQL ``runs``) filters by job, statuses, tags, launched-by and time
range. Its queries must read indexes, never every run. A plan test per dialect seeds many runs
straight through SQL (much faster than ``add_run``), captures every statement a storage call sends
(:func:`selects_sent`) and explains it with its own dialect's ``EXPLAIN``; the answers are checked
against the same filter applied in Python (:meth:`RunPopulation.ids`, :meth:`RunPopulation.counts`),
so a fast path never changes an answer. What differs per dialect — how to load rows and how to read a
plan — stays in its test (tests/plugins/storage_*/test_runs_list_plans.py); what is the same lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..storage.records import RunFilter, RunStatus
from ..tags import SCHEDULE_TAG, USER_TAG

#: the ``runs`` columns :meth:`RunPopulation.row` fills, in its order
RUN_COLUMNS = ("run_id", "job_name", "status", "run_config", "code_pointer", "launcher_info", "created_at",
               "updated_at", "priority")
#: status of run ``i``: ``STATUSES[(i // 3) % 20]`` (80 % success, 15 % failure, 5 % canceled)
STATUSES = ["SUCCESS"] * 16 + ["FAILURE"] * 3 + ["CANCELED"]
JOBS = 20
#: the names of :meth:`RunPopulation.filters`, in order (the suite's test parameters)
FILTER_NAMES = ("none", "job", "status", "two statuses", "selective tag", "common tag", "status and common tag",
                "two statuses and common tag", "two tags", "launched by a schedule", "launched by anyone",
                "time range", "job and time range")


@dataclass(frozen=True)
class RunPopulation:
    """``runs`` runs ``run-000000``..., created one a second from t=1000; run ``i`` is of job
    ``job_{i % 20}``, carries ``team=team-{i % teams}`` (a common tag), ``rare=yes`` when ``i %
    rare_every == 0`` (a selective one), and one run in 50 was launched by one of ``schedules``,
    one in 50 by the user ``alice``."""

    runs: int
    teams: int
    rare_every: int
    schedules: tuple[str, ...]

    def run_id(self, i: int) -> str:
        return f"run-{i:06d}"

    def status(self, i: int) -> str:
        return STATUSES[(i // 3) % 20]

    def created(self, i: int) -> float:
        return 1000.0 + i

    def tags(self, i: int) -> dict[str, str]:
        tags = {"team": f"team-{i % self.teams}"}
        if i % self.rare_every == 0:
            tags["rare"] = "yes"
        if i % 50 == 1:
            tags[SCHEDULE_TAG] = self.schedules[i // 50 % len(self.schedules)]
        elif i % 50 == 2:
            tags[USER_TAG] = "alice"
        return tags

    def row(self, i: int) -> tuple:
        """Run ``i`` as a row of :data:`RUN_COLUMNS`."""
        return (self.run_id(i), f"job_{i % JOBS}", self.status(i), "{}", "{}", "{}", self.created(i),
                self.created(i), 0)

    def tag_rows(self, i: int) -> Iterator[tuple[str, str, str]]:
        """Run ``i``'s ``run_tags`` rows: (run_id, key, value)."""
        return ((self.run_id(i), k, v) for k, v in self.tags(i).items())

    def filters(self) -> dict[str, RunFilter]:
        """Every kind of filter the runs list sends, by name: selective and not, alone and combined."""
        team = f"team-{self.teams - 1}"
        start = self.created(self.runs // 2)
        filters = {
            "none": RunFilter(),
            "job": RunFilter(job_name="job_3"),
            "status": RunFilter(statuses=[RunStatus.FAILURE]),
            "two statuses": RunFilter(statuses=[RunStatus.FAILURE, RunStatus.CANCELED]),
            "selective tag": RunFilter(tags={"rare": "yes"}),
            "common tag": RunFilter(tags={"team": team}),
            "status and common tag": RunFilter(statuses=[RunStatus.FAILURE], tags={"team": team}),
            "two statuses and common tag": RunFilter(statuses=[RunStatus.FAILURE, RunStatus.CANCELED],
                                                     tags={"team": team}),
            "two tags": RunFilter(tags={"team": team, "rare": "yes"}),
            "launched by a schedule": RunFilter(tags={SCHEDULE_TAG: self.schedules[1 % len(self.schedules)]}),
            "launched by anyone": RunFilter(tag_keys=[USER_TAG]),
            "time range": RunFilter(created_after=start, created_before=start + 1000),
            "job and time range": RunFilter(job_name="job_3", created_after=start, created_before=start + 1000),
        }
        assert tuple(filters) == FILTER_NAMES
        return filters

    def matches(self, i: int, f: RunFilter) -> bool:
        tags = self.tags(i)
        return ((not f.statuses or self.status(i) in {s.value for s in f.statuses})
                and (f.job_name is None or f.job_name == f"job_{i % JOBS}")
                and all(tags.get(k) == v for k, v in (f.tags or {}).items())
                and all(k in tags for k in f.tag_keys or ())
                and (f.created_after is None or self.created(i) >= f.created_after)
                and (f.created_before is None or self.created(i) < f.created_before))

    def ids(self, f: RunFilter) -> list[str]:
        """The ids of the runs ``f`` selects, newest first: what ``get_runs`` pages through."""
        return [self.run_id(i) for i in reversed(range(self.runs)) if self.matches(i, f)]

    def counts(self, f: RunFilter) -> dict[RunStatus, int]:
        """What ``count_runs_by_status(f)`` answers."""
        counts: dict[RunStatus, int] = {}
        for i in range(self.runs):
            if self.matches(i, f):
                status = RunStatus(self.status(i))
                counts[status] = counts.get(status, 0) + 1
        return counts


def selects_sent(storage: Any, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """(statement, parameters) of every SELECT (or WITH) ``call()`` sends through ``storage.engine``
    (a :class:`runyard.storage.sql.SqlRunStorage`), ready to be explained."""
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    event.listen(storage.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(storage.engine, "before_cursor_execute", capture)
    return sent


class RunsListPlanSuite:
    """The runs list's queries on a real database, for one SQL dialect. A subclass sets ``RUNS`` and
    provides:

    * a ``seeded`` fixture: a ready storage holding exactly ``RUNS`` (loaded straight through SQL);
    * :meth:`plans`: ``(statement, plan)`` of every SELECT ``call()`` sends (:func:`selects_sent`,
      then the dialect's ``EXPLAIN``);
    * :meth:`check_page` and :meth:`check_counts`: assert on those plans for a filter (no full scan,
      no correlated subquery: what that looks like is the dialect's).

    Every test checks the answers against :class:`RunPopulation`, so a fast path never changes one.
    """

    RUNS: RunPopulation

    def plans(self, storage: Any, call: Callable[[], Any]) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def check_page(self, name: str, plans: list[tuple[str, Any]]) -> None:
        raise NotImplementedError

    def check_counts(self, name: str, plans: list[tuple[str, Any]]) -> None:
        raise NotImplementedError

    @pytest.mark.parametrize("name", FILTER_NAMES)
    def test_a_page_reads_indexes_only(self, seeded, name):
        f = self.RUNS.filters()[name]
        got = []
        plans = self.plans(seeded, lambda: got.extend(seeded.get_runs(f, limit=51)))
        assert [r.run_id for r in got] == self.RUNS.ids(f)[:51]
        self.check_page(name, plans)

    @pytest.mark.parametrize("name", FILTER_NAMES)
    def test_the_next_page_follows_the_cursor(self, seeded, name):
        f = self.RUNS.filters()[name]
        first = seeded.get_runs(f, limit=20)
        second = seeded.get_runs(f, limit=20, cursor=first[-1].run_id) if first else []
        assert [r.run_id for r in first + second] == self.RUNS.ids(f)[:40]

    @pytest.mark.parametrize("name", FILTER_NAMES)
    def test_counts_per_status_have_no_correlated_subquery(self, seeded, name):
        f = self.RUNS.filters()[name]
        counts: dict = {}
        plans = self.plans(seeded, lambda: counts.update(seeded.count_runs_by_status(f)))
        assert counts == self.RUNS.counts(f)
        self.check_counts(name, plans)
