"""The runs list's filter, shared by the ``/runs`` page and the GraphQL ``runs`` query.

A filter is written the same way everywhere a user can share it: the page's URL
(``/runs?status=FAILURE&status=CANCELED&job=etl&tag=team=data&launched_by=schedule:nightly
&after=2026-11-30T08:00:00Z&before=...``), and the GraphQL arguments. :class:`RunsQuery` parses
either, refuses bad input with a message naming the parameter, and turns into the storage's
:class:`~runyard.storage.records.RunFilter`.

Counting is what costs at a million runs, so nothing here counts unless asked: a
:class:`RunsPageRoot` computes ``count`` and the per-status counts only when the GraphQL field is
selected (or the page template reads them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runyard.storage.records import RunFilter, RunStatus
from runyard.tags import LaunchedBy

from .context import WebError

if TYPE_CHECKING:  # pragma: no cover
    from runyard.storage.base import RunStorage
    from runyard.storage.records import RunRecord

#: statuses a user filters on (NOT_STARTED is a run being created: never listed on its own)
STATUS_CHOICES = [s.value for s in RunStatus]


def parse_time(value: str, name: str) -> float:
    """An ISO 8601 time (``2026-11-30T08:00``, with ``Z`` or an offset; none means UTC) or epoch
    seconds, as epoch seconds; WebError naming ``name`` otherwise."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise WebError(f"{name}={value!r} is not a time: give ISO 8601 (2026-11-30T08:00:00Z) or epoch "
                       "seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(ts: float) -> str:
    """Epoch seconds as the ISO text the URL carries (UTC, ``Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RunsQuery:
    """Which runs the list shows. Every part narrows the list (statuses: any of them; tags: all)."""

    statuses: tuple[RunStatus, ...] = ()
    job: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    launched_by: LaunchedBy | None = None
    created_after: float | None = None
    created_before: float | None = None
    #: the code locations the asking principal is limited to (None: all); never in a URL
    locations: tuple[str, ...] | None = None

    @classmethod
    def build(cls, *, statuses: Iterable[str] | None = None, job: str | None = None,
              tags: Iterable[tuple[str, str]] | None = None, launched_by: str | None = None,
              created_after: float | None = None, created_before: float | None = None,
              where: str = "statuses") -> RunsQuery:
        """``where`` names the statuses' parameter in messages (``status`` in a URL). The query is
        limited to the code locations of the request's principal (docs/auth.md)."""
        from .auth import current_scope

        wanted: list[RunStatus] = []
        for raw in statuses or ():
            try:
                status = RunStatus(raw.strip().upper())
            except ValueError:
                what = "status" if where == "status" else "run status"
                raise WebError(f"unknown {what} {raw!r} in {where}; statuses: {', '.join(STATUS_CHOICES)}") from None
            if status not in wanted:
                wanted.append(status)
        pairs: dict[str, str] = {}
        for key, value in tags or ():
            if not key:
                raise WebError(f"tag '{key}={value}' has no key: write tag=key=value")
            if key in pairs and pairs[key] != value:
                raise WebError(f"tag '{key}' is given twice with different values ({pairs[key]!r}, {value!r}): "
                               "a run has one value per tag, so no run could match")
            pairs[key] = value
        by = None
        if launched_by:
            try:
                by = LaunchedBy.parse(launched_by)
            except ValueError as exc:
                raise WebError(str(exc)) from None
        if by is not None:
            key, value = by.filter_tag()
            if value is not None and pairs.get(key, value) != value:
                raise WebError(f"launched_by={by} and tag {key}={pairs[key]} contradict each other: no run could match")
        if created_after is not None and created_before is not None and created_after >= created_before:
            raise WebError(f"the time range is empty: after ({iso(created_after)}) is not before before "
                           f"({iso(created_before)})")
        scope = current_scope()
        return cls(statuses=tuple(wanted), job=job or None, tags=tuple(pairs.items()), launched_by=by,
                   created_after=created_after, created_before=created_before,
                   locations=None if scope is None else tuple(scope))

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> RunsQuery:
        """From the page's URL query (a werkzeug MultiDict): ``status`` and ``tag`` repeat."""
        tags = []
        for raw in args.getlist("tag"):
            if not raw.strip():
                continue  # the form's empty "add a tag" field
            key, sep, value = raw.partition("=")
            if not sep:
                raise WebError(f"tag={raw!r} is not key=value")
            tags.append((key.strip(), value))
        after, before = args.get("after") or None, args.get("before") or None
        return cls.build(statuses=[s for s in args.getlist("status") if s], where="status", job=args.get("job"),
                         tags=tags, launched_by=args.get("launched_by"),
                         created_after=parse_time(after, "after") if after else None,
                         created_before=parse_time(before, "before") if before else None)

    def to_filter(self, *, with_statuses: bool = True) -> RunFilter:
        tags = dict(self.tags)
        tag_keys = None
        if self.launched_by is not None:
            key, value = self.launched_by.filter_tag()
            if value is None:
                tag_keys = [key]
            else:
                tags[key] = value
        return RunFilter(statuses=list(self.statuses) if with_statuses and self.statuses else None,
                         job_name=self.job, tags=tags or None, tag_keys=tag_keys,
                         created_after=self.created_after, created_before=self.created_before,
                         locations=None if self.locations is None else list(self.locations))

    def url_args(self, **changes: Any) -> dict[str, Any]:
        """The URL query of this filter (for ``url_for``), with ``changes`` applied (None removes)."""
        args: dict[str, Any] = {
            "status": [s.value for s in self.statuses] or None, "job": self.job,
            "tag": [f"{k}={v}" for k, v in self.tags] or None,
            "launched_by": str(self.launched_by) if self.launched_by else None,
            "after": iso(self.created_after) if self.created_after is not None else None,
            "before": iso(self.created_before) if self.created_before is not None else None,
        }
        args.update(changes)
        return {k: v for k, v in args.items() if v is not None}

    def graphql_args(self) -> dict[str, Any]:
        """This filter as the GraphQL ``runs`` query's arguments (what the page's script re-queries)."""
        return {"statuses": [s.value for s in self.statuses] or None, "jobName": self.job,
                "tags": [{"key": k, "value": v} for k, v in self.tags] or None,
                "launchedBy": str(self.launched_by) if self.launched_by else None,
                "createdAfter": self.created_after, "createdBefore": self.created_before}

    @property
    def is_empty(self) -> bool:
        return replace(self, locations=None) == RunsQuery()


@dataclass
class RunsPageRoot:
    """One page of runs; the counts are asked of storage when first read, never before."""

    storage: RunStorage
    query: RunsQuery
    runs: list[RunRecord]
    cursor: str | None
    _cache: dict[str, Any] = field(default_factory=dict)

    def count(self) -> int:
        if "count" not in self._cache:
            self._cache["count"] = self.storage.count_runs(self.query.to_filter())
        return self._cache["count"]

    def status_counts(self) -> dict[RunStatus, int]:
        """Per status, for every filter but the statuses (what each status chip would show)."""
        if "status_counts" not in self._cache:
            counts = self.storage.count_runs_by_status(self.query.to_filter(with_statuses=False))
            self._cache["status_counts"] = {st: counts[st] for st in RunStatus if counts.get(st)}
        return self._cache["status_counts"]



def runs_page(storage: RunStorage, query: RunsQuery, *, limit: int, cursor: str | None = None) -> RunsPageRoot:
    """The ``limit`` newest runs matching ``query`` after ``cursor`` (a run id; WebError when
    unknown); the root's ``cursor`` continues after them, None on the last page."""
    if cursor is not None and storage.get_run(cursor) is None:
        raise WebError(f"unknown cursor {cursor!r}: start again from the newest runs")
    runs = storage.get_runs(query.to_filter(), limit=limit + 1, cursor=cursor)
    more = len(runs) > limit
    runs = runs[:limit]
    return RunsPageRoot(storage, query, runs, runs[-1].run_id if more and runs else None)

