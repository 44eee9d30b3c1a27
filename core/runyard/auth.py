"""Who may do what: roles, principals, API tokens (docs/auth.md).

Four roles, each allowed everything the one before it is:

- ``viewer``: read every page, the API's queries, live streams and metrics;
- ``launcher``: launch, re-execute and terminate runs, dry-run schedules and sensors;
- ``editor``: start and stop schedules and sensors, delete runs, reload code locations;
- ``admin``: shut down code locations, read the audit log, manage API tokens.

A :class:`Principal` is whoever sent a request, with one role and optionally the code locations it is
limited to. The web UI finds it (basic auth, an API token, or a plugin's authentication hook) and
asks :meth:`Principal.can` before every action; core only defines the model and the tokens, so the
CLI, the web UI and plugins agree on it.

An API token reads ``ryt_<id>_<secret>``: the id (public, the storage key and what ``runyard auth
token list`` shows) and 32 random bytes. Storage keeps the token's SHA-256 digest, never the token;
a token is high-entropy, so a plain digest is enough (a password-hashing function would only slow
every request down).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RunyardError

if TYPE_CHECKING:  # pragma: no cover
    from .storage.base import RunStorage
    from .storage.records import ApiToken

TOKEN_PREFIX = "ryt_"
_ID_HEX = 12


class AuthError(RunyardError):
    """An authentication or authorization problem a caller can act on (bad role name, bad token...)."""


class Role(enum.IntEnum):
    """Roles in increasing order of what they allow: a role may do all its predecessors may."""

    VIEWER = 1
    LAUNCHER = 2
    EDITOR = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        if isinstance(value, Role):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise AuthError(f"unknown role '{value}': choose one of {', '.join(ROLE_NAMES)}") from None


ROLE_NAMES = tuple(r.label for r in Role)


class Action(enum.Enum):
    """Everything a role check is asked about; the value is the least role that may do it."""

    READ = Role.VIEWER
    LAUNCH_RUN = Role.LAUNCHER
    REEXECUTE_RUN = Role.LAUNCHER
    TERMINATE_RUN = Role.LAUNCHER
    DRY_RUN_INSTIGATOR = Role.LAUNCHER
    TOGGLE_INSTIGATOR = Role.EDITOR
    DELETE_RUN = Role.EDITOR
    RELOAD_LOCATION = Role.EDITOR
    SHUTDOWN_LOCATION = Role.ADMIN
    READ_AUDIT_LOG = Role.ADMIN
    MANAGE_TOKENS = Role.ADMIN

    # several actions share a least role: without this, Enum would make them aliases of one member
    def __new__(cls, role: Role) -> Action:
        member = object.__new__(cls)
        member._value_ = (role, len(cls.__members__))
        return member

    @property
    def role(self) -> Role:
        return self.value[0]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Whoever sent a request.

    ``name`` is what the audit log and the ``runyard/user`` tag record (``alice``, ``token:ci``);
    ``via`` how it was authenticated (``basic``, ``token``, ``none`` when the web UI asks nobody to
    log in, or a plugin's own word such as ``oidc``); ``locations`` the code locations it is limited
    to, None for all.
    """

    name: str
    role: Role
    via: str
    locations: frozenset[str] | None = None
    token_id: str | None = None

    def sees(self, location: str | None) -> bool:
        """Whether anything of ``location`` (a run's, a job's, a schedule's) is visible. Something
        with no location (a run made through the Python API) is visible only to unscoped principals."""
        return self.locations is None or (location is not None and location in self.locations)

    def can(self, action: Action, location: str | None = None) -> bool:
        """Whether this principal may do ``action`` (on something of ``location``)."""
        return self.role >= action.role and self.sees(location)

    def refusal(self, action: Action, location: str | None = None) -> str:
        """Why :meth:`can` said no, for the error a caller sees."""
        if self.role < action.role:
            return (f"{self.name} has role '{self.role.label}'; {action.label.replace('_', ' ')} needs "
                    f"'{action.role.label}' or above")
        return f"{self.name} is limited to code locations {', '.join(sorted(self.locations or ()))}"


#: who a web UI without authentication serves: everyone may do everything, as before roles existed
ANONYMOUS_ADMIN = Principal(name="anonymous", role=Role.ADMIN, via="none")


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is shown once and never stored; ``digest`` is what is stored."""

    token_id: str
    secret: str
    digest: str


def new_token() -> NewToken:
    token_id = secrets.token_hex(_ID_HEX // 2)
    secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return NewToken(token_id=token_id, secret=secret, digest=token_digest(secret))


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_id_of(secret: str) -> str | None:
    """The id part of a presented token, or None when it is not shaped like one of ours."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, rest = secret[len(TOKEN_PREFIX):].partition("_")
    if not sep or len(token_id) != _ID_HEX or not rest or any(c not in "0123456789abcdef" for c in token_id):
        return None
    return token_id


def digest_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(secret), digest)


def verify_token(storage: RunStorage, presented: str, now: float) -> ApiToken | None:
    """The stored token ``presented`` is, if it may be used at ``now``: shaped like one of ours,
    known, its digest matching (compared in constant time), neither revoked nor expired. None
    otherwise; :func:`token_problem` says which, for the message a caller answers with."""
    token = _stored_token(storage, presented)
    return token if token is not None and token.active(now) else None


def token_problem(storage: RunStorage, presented: str, now: float) -> str | None:
    """Why :func:`verify_token` refuses ``presented`` (``unknown``, ``revoked`` or ``expired``), or None
    when it would accept it. "unknown" covers a malformed token and a wrong secret for a known id
    alike: a caller learns nothing about which ids exist."""
    token = _stored_token(storage, presented)
    if token is None:
        return "unknown"
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and now >= token.expires_at:
        return "expired"
    return None


def _stored_token(storage: RunStorage, presented: str) -> ApiToken | None:
    token_id = token_id_of(presented.strip())
    if token_id is None:
        return None
    token = storage.get_api_token(token_id)
    if token is None or not digest_matches(presented.strip(), token.digest):
        return None
    return token


def principal_for_token(token: ApiToken) -> Principal:
    """Who a request carrying ``token`` is: ``token:<name>``, with the token's role and locations."""
    return Principal(name=f"token:{token.name}", role=token.role, via="token",
                     locations=frozenset(token.locations) if token.locations is not None else None,
                     token_id=token.token_id)
