"""API tokens and the audit log on the shared SQL schema (tables ``api_tokens`` and ``audit_log``).

A mixin of :class:`~.storage.SqlRunStorage`: it writes through ``transact`` and reads through
``query``, so a backend's retries and outage handling cover these tables as they cover the runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..records import ApiToken, AuditEntry, AuditFilter
from . import schema as s

T = TypeVar("T")
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


class SqlAccessRecords:
    """The token and audit methods of :class:`~runyard.storage.base.RunStorage` in SQL."""

    transact: Callable[..., Any]
    query: Callable[..., Any]

    # ---- API tokens ------------------------------------------------------------------------------
    def add_api_token(self, token: ApiToken) -> None:
        row = {"token_id": token.token_id, "name": token.name, "role": token.role.label,
               "locations": _dumps(list(token.locations)) if token.locations is not None else None,
               "digest": token.digest, "created_at": token.created_at, "created_by": token.created_by,
               "expires_at": token.expires_at, "last_used_at": token.last_used_at,
               "revoked_at": token.revoked_at}
        self.transact(lambda conn: conn.execute(insert(s.api_tokens).values(**row)))

    def get_api_token(self, token_id: str) -> ApiToken | None:
        query = select(s.api_tokens).where(s.api_tokens.c.token_id == token_id)
        row = self.query(lambda conn: conn.execute(query).first())
        return _token_from_row(row) if row is not None else None

    def list_api_tokens(self, include_revoked: bool = False) -> list[ApiToken]:
        t = s.api_tokens.c
        query = select(s.api_tokens).order_by(t.created_at.desc(), t.token_id.desc())
        if not include_revoked:
            query = query.where(t.revoked_at.is_(None))
        return [_token_from_row(r) for r in self.query(lambda conn: conn.execute(query).all())]

    def revoke_api_token(self, token_id: str, when: float) -> bool:
        t = s.api_tokens.c
        statement = (update(s.api_tokens).where(t.token_id == token_id, t.revoked_at.is_(None))
                     .values(revoked_at=when))
        return self.transact(lambda conn: conn.execute(statement).rowcount == 1)

    def touch_api_token(self, token_id: str, when: float) -> None:
        t = s.api_tokens.c
        statement = (update(s.api_tokens)
                     .where(t.token_id == token_id, or_(t.last_used_at.is_(None), t.last_used_at < when))
                     .values(last_used_at=when))
        self.transact(lambda conn: conn.execute(statement))

    # ---- the audit log ---------------------------------------------------------------------------
    def add_audit_entry(self, entry: AuditEntry) -> AuditEntry:
        row = {"timestamp": entry.timestamp, "actor": entry.actor, "via": entry.via, "role": entry.role,
               "action": entry.action, "target": entry.target, "location": entry.location,
               "result": str(entry.result), "code": entry.code, "message": entry.message,
               "remote_addr": entry.remote_addr, "details": _dumps(entry.details) if entry.details else None}
        # An entry is never refused for a long value (a plugin's principal name, a huge action name):
        # bounded columns keep their first characters.
        for name, value in row.items():
            length = getattr(s.audit_log.c[name].type, "length", None)
            if length and isinstance(value, str) and len(value) > length:
                row[name] = value[:length]

        def op(conn: Connection) -> int:
            return int(conn.execute(insert(s.audit_log).values(**row)).inserted_primary_key[0])

        return replace(entry, id=self.transact(op))

    def get_audit_entries(self, filters: AuditFilter | None = None, limit: int = 50,
                          before_id: int | None = None) -> list[AuditEntry]:
        if limit <= 0:
            return []
        a = s.audit_log.c
        query = select(s.audit_log)
        if before_id is not None:
            query = query.where(a.id < before_id)
        if filters is not None:
            for column, value in ((a.actor, filters.actor), (a.action, filters.action),
                                  (a.location, filters.location), (a.result, filters.result)):
                if value is not None:
                    query = query.where(column == str(value))
            if filters.since is not None:
                query = query.where(a.timestamp >= filters.since)
            if filters.until is not None:
                query = query.where(a.timestamp < filters.until)
        query = query.order_by(a.id.desc()).limit(limit)
        return [_entry_from_row(r) for r in self.query(lambda conn: conn.execute(query).all())]

    def delete_audit_entries(self, before: float) -> int:
        statement = delete(s.audit_log).where(s.audit_log.c.timestamp < before)
        return self.transact(lambda conn: int(conn.execute(statement).rowcount or 0))


def _token_from_row(r: Any) -> ApiToken:
    return ApiToken(token_id=r.token_id, name=r.name, role=r.role,
                    locations=tuple(json.loads(r.locations)) if r.locations is not None else None,
                    digest=r.digest, created_at=r.created_at, created_by=r.created_by,
                    expires_at=r.expires_at, last_used_at=r.last_used_at, revoked_at=r.revoked_at)


def _entry_from_row(r: Any) -> AuditEntry:
    return AuditEntry(id=r.id, timestamp=r.timestamp, actor=r.actor, via=r.via, role=r.role, action=r.action,
                      target=r.target, location=r.location, result=r.result, code=r.code, message=r.message,
                      remote_addr=r.remote_addr, details=json.loads(r.details) if r.details else {})
