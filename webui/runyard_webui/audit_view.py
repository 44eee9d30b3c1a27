"""The audit log page's filter and paging (``/audit``; docs/auth.md, "The audit log in the web UI").

A filter is written the same way in the page's URL (``/audit?actor=alice&action=launchRun
&location=etl&result=refused&before=120``) and in the GraphQL ``auditLog`` query's arguments, which
the page's script (static/audit.js) sends for the older pages. Each part must match exactly, as
storage's :class:`~runyard.storage.records.AuditFilter` does; ``before`` is an entry id, the cursor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runyard.storage.records import AuditFilter, AuditResult

from .context import WebError

if TYPE_CHECKING:  # pragma: no cover
    from runyard.storage.base import RunStorage
    from runyard.storage.records import AuditEntry

RESULTS = [r.value for r in AuditResult]


@dataclass(frozen=True)
class AuditQuery:
    """Which entries the page shows, newest first: those matching every part given, older than
    entry ``before`` when it is set."""

    actor: str | None = None
    action: str | None = None
    location: str | None = None
    result: str | None = None
    before: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> AuditQuery:
        """From the page's URL query; WebError naming the parameter on bad input."""
        def text(name: str) -> str | None:
            return (args.get(name) or "").strip() or None

        result = text("result")
        if result is not None and result.lower() not in RESULTS:
            raise WebError(f"result={result!r} is not a result: choose one of {', '.join(RESULTS)}")
        before = text("before")
        if before is not None and not before.isdigit():
            raise WebError(f"before={before!r} must be an audit entry id (a whole number)")
        return cls(actor=text("actor"), action=text("action"), location=text("location"),
                   result=result.lower() if result else None, before=int(before) if before else None)

    def to_filter(self) -> AuditFilter:
        return AuditFilter(actor=self.actor, action=self.action, location=self.location, result=self.result)

    def url_args(self, **changes: Any) -> dict[str, Any]:
        """The URL query of this filter and cursor (for ``url_for``), with ``changes`` applied (None
        removes). A new filter starts again from the newest entries: give ``before=None``."""
        args: dict[str, Any] = {"actor": self.actor, "action": self.action, "location": self.location,
                                "result": self.result, "before": self.before}
        args.update(changes)
        return {k: v for k, v in args.items() if v is not None}

    def graphql_args(self) -> dict[str, Any]:
        """The filter as ``auditLog``'s arguments (the cursor, ``beforeId``, is the script's)."""
        return {"actor": self.actor, "action": self.action, "location": self.location, "result": self.result}

    @property
    def filtered(self) -> bool:
        return any((self.actor, self.action, self.location, self.result))


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    #: the id to read on from (``before=``), None on the last page
    older: int | None


def audit_page(storage: RunStorage, query: AuditQuery, *, limit: int) -> AuditPage:
    """The ``limit`` newest entries matching ``query`` (one more is read to know whether any is older)."""
    entries = storage.get_audit_entries(query.to_filter(), limit=limit + 1, before_id=query.before)
    more = len(entries) > limit
    entries = entries[:limit]
    return AuditPage(entries, entries[-1].id if more and entries else None)


def details_text(entry: AuditEntry) -> str:
    """An entry's details as indented JSON, for the page ("" when it has none)."""
    import json

    return json.dumps(entry.details, indent=2, sort_keys=True, default=str) if entry.details else ""
