"""Creating, listing and revoking API tokens, and reading the audit log (``runyard auth``,
docs/auth.md). Creating and revoking a token are themselves written to the audit log.

Every function takes the storage and who acts (``actor``, ``via``), so the CLI and any other front
end record the same entries. Bad input raises :class:`~runyard.auth.AuthError` before anything is
stored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..auth import AuthError, Role, new_token
from ..storage.records import ApiToken, AuditEntry, AuditResult

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.base import RunStorage

#: a token name: what ``token:<name>`` shows in the audit log and the ``runyard/user`` tag
NAME_MAX = 100
LOCATION_MAX = 255
#: the longest lifetime ``--expires-in`` accepts (100 years): beyond it, make a token that never expires
EXPIRES_MAX_SECONDS = 36_500 * 86_400.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 7 * 86_400.0}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")

ACTION_CREATE = "token.create"
ACTION_REVOKE = "token.revoke"


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` (a whole number and one unit)."""
    match = _DURATION.match(text or "")
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
    if not match or seconds <= 0:
        raise AuthError(f"bad duration '{text}': give a whole number and a unit s, m, h, d or w, e.g. "
                        "30d, 12h or 90m")
    if seconds > EXPIRES_MAX_SECONDS:
        raise AuthError(f"bad duration '{text}': at most 36500d; leave --expires-in out for a token "
                        "that does not expire")
    return seconds


def token_status(token: ApiToken, now: float) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if token.revoked_at is not None:
        return "revoked"
    return "active" if token.active(now) else "expired"


def token_row(token: ApiToken, now: float) -> dict[str, Any]:
    """What ``runyard auth token list --json`` shows of a token: never its digest (docs/cli.md)."""
    return {"token_id": token.token_id, "name": token.name, "role": token.role.label,
            "locations": list(token.locations) if token.locations is not None else None,
            "created_at": token.created_at, "created_by": token.created_by, "last_used_at": token.last_used_at,
            "expires_at": token.expires_at, "revoked_at": token.revoked_at, "status": token_status(token, now)}


def _check_text(what: str, value: str, limit: int) -> str:
    if not value or not value.strip() or value != value.strip() or len(value) > limit or not value.isprintable():
        raise AuthError(f"bad {what} {value[:120]!r}: 1 to {limit} printable characters, without leading or "
                        "trailing spaces")
    return value


def create_token(storage: RunStorage, name: str, role: str | Role, *, locations: Iterable[str] = (),
                 expires_in: float | None = None, actor: str, via: str,
                 now: float | None = None) -> tuple[ApiToken, str]:
    """Make and store a token; return it and its secret (shown once, never stored). ``locations``
    limits it to those code locations (empty: all); ``expires_in`` is seconds from now."""
    _check_text("token name", name, NAME_MAX)
    parsed_role = Role.parse(role)
    wanted = list(dict.fromkeys(_check_text("code location", loc, LOCATION_MAX) for loc in locations))
    now = time.time() if now is None else now
    made = new_token()
    token = ApiToken(token_id=made.token_id, name=name, role=parsed_role, locations=tuple(wanted) or None,
                     digest=made.digest, created_at=now, created_by=actor,
                     expires_at=now + expires_in if expires_in is not None else None)
    supported(storage.add_api_token, token)
    _audit(storage, ACTION_CREATE, token, actor=actor, via=via, now=now)
    return token, made.secret


def resolve_token(storage: RunStorage, id_or_name: str) -> ApiToken:
    """The token with that id (revoked ones too), else the one active token with that name. An unknown
    id or name, or a name several active tokens share, raises :class:`AuthError` (listing their ids)."""
    token = supported(storage.get_api_token, id_or_name)
    if token is not None:
        return token
    named = [t for t in storage.list_api_tokens() if t.name == id_or_name]
    if not named:
        raise AuthError(f"no API token has the id or name '{id_or_name}' (`runyard auth token list --all` "
                        "lists them)")
    if len(named) > 1:
        ids = ", ".join(t.token_id for t in named)
        raise AuthError(f"{len(named)} active API tokens are named '{id_or_name}' ({ids}): give the id of "
                        "the one to revoke")
    return named[0]


def revoke_token(storage: RunStorage, id_or_name: str, *, actor: str, via: str,
                 now: float | None = None) -> ApiToken:
    """Revoke a token (by id, or by a name only one active token has): requests carrying it are
    refused from the next one on. Returns the revoked token. Revoking a revoked token raises."""
    token = resolve_token(storage, id_or_name)
    now = time.time() if now is None else now
    if token.revoked_at is not None or not storage.revoke_api_token(token.token_id, now):
        raise AuthError(f"API token {token.token_id} ('{token.name}') is already revoked")
    revoked = storage.get_api_token(token.token_id) or token
    _audit(storage, ACTION_REVOKE, revoked, actor=actor, via=via, now=now)
    return revoked


def _audit(storage: RunStorage, action: str, token: ApiToken, *, actor: str, via: str, now: float) -> None:
    details = {"name": token.name, "role": token.role.label,
               "locations": list(token.locations) if token.locations is not None else None,
               "expires_at": token.expires_at}
    storage.add_audit_entry(AuditEntry(action=action, actor=actor, via=via, result=AuditResult.OK, timestamp=now,
                                       target=token.token_id, details=details))


def supported(method: Any, *args: Any) -> Any:
    """Call a token method of storage; one that lacks it becomes a clear error."""
    try:
        return method(*args)
    except NotImplementedError as exc:
        raise AuthError(f"{exc}: API tokens need a storage that keeps them (sqlite, postgres, mysql)") from exc
