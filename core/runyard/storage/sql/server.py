"""What every storage on a database *server* shares: how a user says where the server is, and a
bounded connection pool per process.

A server-backed storage plugin subclasses :class:`ServerStorageConfig` for its config model (adding
its own keys and its port's default), implements :meth:`ServerStorageConfig.check_url` for its URL
schemes, and builds its engine with :func:`pooled_engine`. No SQLAlchemy import at module level:
validating an instance file stays cheap.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: why a URL could not be parsed, without SQLAlchemy's message (it may quote the password)
UNPARSABLE_URL = ("the URL cannot be parsed: check the port, and write special characters of the user name "
                  "or password as %XX (@ as %40, : as %3A, / as %2F)")


class ServerStorageConfig(BaseModel):
    """Either ``url``, or ``host``/``port``/``user``/``password``/``database``; ``params`` with both.
    The password and the URL (which may hold one) are secrets: never shown, never echoed."""

    model_config = ConfigDict(extra="forbid")

    #: how the URL looks, for messages (``mysql://user:password@host:3306/database``)
    url_form: ClassVar[str] = "scheme://user:password@host:port/database"
    #: config keys that locate the server besides host/user/password/database (``unix_socket``)
    location_keys: ClassVar[tuple[str, ...]] = ()

    url: SecretStr | None = None
    host: str | None = Field(None, description="Server host name or IP.")
    port: int = Field(..., ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    params: dict[str, str] = Field(default_factory=dict, description="Extra driver connection arguments.")
    pool_size: int = Field(5, ge=1, description="Connections a process keeps open.")
    max_overflow: int = Field(5, ge=0, description="Extra connections a process may open under load.")
    pool_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a free pooled connection.")
    pool_recycle: float = Field(1800.0, description="Replace connections older than this (s); <= 0: never.")
    connect_timeout: int = Field(10, ge=1, description="Seconds to wait for a new connection.")

    @classmethod
    def check_url(cls, raw: str) -> None:
        """Raise ``ValueError`` (never quoting ``raw``) for a URL this storage cannot use."""
        raise NotImplementedError

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: SecretStr | None) -> SecretStr | None:
        # reported at the url key (a secret: its value is never echoed), with the variable it came from
        if url is not None:
            cls.check_url(url.get_secret_value())
        return url

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> ServerStorageConfig:
        keys = ("host", "user", "password", "database", *self.location_keys)
        parts = [k for k in keys if getattr(self, k) is not None]
        if self.url is not None:
            if parts or "port" in self.model_fields_set:
                raise ValueError(f"give either url or host/port/user/password/database, not both "
                                 f"(got url and {', '.join(parts or ['port'])})")
        elif not parts:
            raise ValueError(f"set url ({self.url_form}) or host and database")
        elif self.database is None:
            raise ValueError("database is required (the name of an existing database)")
        return self


def check_scheme(raw: str, *, accepted: tuple[str, ...], families: tuple[str, ...], url_form: str,
                 distribution: str, driver: str, write: str) -> None:
    """The checks every server URL gets: a scheme this storage accepts (else a "did you mean", or
    which driver it uses when the user named another one of the same database), and a URL SQLAlchemy
    can parse. ``families`` are the database names a ``NAME+driver`` scheme may start with; ``write``
    says what to write instead (``mysql://... or mysql+pymysql://...``)."""
    if "://" not in raw:
        raise ValueError(f"url must look like {url_form}")
    scheme = raw.split("://", 1)[0]
    if scheme not in accepted:
        family, plus, other = scheme.partition("+")
        if plus and family in families:
            raise ValueError(f"URL driver '{other}' is not supported: {distribution} uses {driver} "
                             f"(write {write})")
        close = difflib.get_close_matches(scheme, accepted, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unsupported URL scheme '{scheme}'{hint}: expected {url_form}")
    from sqlalchemy.engine import make_url

    try:
        port = make_url(raw).port
    except Exception:  # noqa: BLE001 - its message may quote the password: never pass it on
        raise ValueError(UNPARSABLE_URL) from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{UNPARSABLE_URL} (the port must be 1 to 65535)")


def pooled_engine(url: Any, config: ServerStorageConfig, connect_args: dict[str, Any]) -> Any:
    """A SQLAlchemy engine with a bounded pool per process (``pool_size + max_overflow``), most
    recently used connection first, so idle ones at the bottom are the ones recycled."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import QueuePool

    return create_engine(
        url,
        poolclass=QueuePool,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout,
        pool_recycle=config.pool_recycle if config.pool_recycle > 0 else -1,
        pool_use_lifo=True,
        connect_args=connect_args,
    )
