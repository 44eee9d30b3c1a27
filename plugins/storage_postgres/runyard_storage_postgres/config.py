"""The ``postgres`` storage's config model and the SQLAlchemy URL built from it.

No SQLAlchemy or psycopg2 import at module level: validating an instance file stays cheap.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

#: URL schemes users may write; all mean psycopg2 (SQLAlchemy 2.1 maps a bare ``postgresql://`` to
#: psycopg 3, which this plugin does not use).
ACCEPTED_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
DRIVERNAME = "postgresql+psycopg2"


class PostgresStorageConfig(BaseModel):
    """Either ``url``, or ``host``/``port``/``user``/``password``/``database``; ``params`` with both."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = Field(None, description="postgresql://user:password@host:port/database")
    host: str | None = Field(None, description="Server host name or IP, or a Unix socket directory.")
    port: int = Field(5432, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    params: dict[str, str] = Field(default_factory=dict,
                                   description="Extra libpq connection parameters (sslmode, ...).")
    pool_size: int = Field(5, ge=1, description="Connections a process keeps open.")
    max_overflow: int = Field(5, ge=0, description="Extra connections a process may open under load.")
    pool_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a free pooled connection.")
    pool_recycle: float = Field(1800.0, description="Replace connections older than this (s); <= 0: never.")
    statement_timeout_ms: int = Field(60_000, ge=0, description="Server-side limit per statement; 0: none.")
    connect_timeout: int = Field(10, ge=1, description="Seconds to wait for a new connection.")
    application_name: str = Field("runyard", description="Shown in pg_stat_activity.")
    notifications: bool = Field(True, description="LISTEN for wake-ups (false: poll, e.g. behind a "
                                                  "transaction-mode connection pooler). Writes always NOTIFY.")
    poll_interval: float = Field(0.5, gt=0, description="Seconds between looks when polling.")
    reconnect_timeout: float = Field(60.0, ge=0, description="How long an operation retries after a "
                                                             "dropped connection before it fails.")

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> PostgresStorageConfig:
        parts = [k for k in ("host", "user", "password", "database") if getattr(self, k) is not None]
        if self.url is not None:
            if parts or "port" in self.model_fields_set:
                raise ValueError(f"give either url or host/port/user/password/database, not both "
                                 f"(got url and {', '.join(parts or ['port'])})")
            try:
                check_url(self.url.get_secret_value())
            except ValueError as exc:  # reported at the model level: the input (a secret) is not echoed
                raise ValueError(f"url: {exc}") from None
        elif not parts:
            raise ValueError("set url (postgresql://user:password@host:port/database) or host and database")
        elif self.database is None:
            raise ValueError("database is required (the name of an existing database)")
        return self


def check_url(raw: str) -> None:
    """Reject what SQLAlchemy would reject later with a less helpful message (no secrets in it)."""
    if "://" not in raw:
        raise ValueError("url must look like postgresql://user:password@host:port/database")
    scheme = raw.split("://", 1)[0]
    if scheme in ACCEPTED_SCHEMES:
        from sqlalchemy.engine import make_url

        try:
            make_url(raw)
        except Exception:  # noqa: BLE001 - its message may quote the password: never pass it on
            raise ValueError("the URL cannot be parsed: check the port, and write special characters of the "
                             "user name or password as %XX (@ as %40, : as %3A, / as %2F)") from None
        return
    if scheme.startswith("postgresql+") or scheme.startswith("postgres+"):
        driver = scheme.split("+", 1)[1]
        raise ValueError(f"URL driver '{driver}' is not supported: runyard-storage-postgres uses psycopg2 "
                         f"(write postgresql://... or postgresql+psycopg2://...)")
    close = difflib.get_close_matches(scheme, ACCEPTED_SCHEMES, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"unsupported URL scheme '{scheme}'{hint}: expected postgresql://user:password@host:port/database")


def build_url(config: PostgresStorageConfig) -> Any:
    """The SQLAlchemy URL (driver psycopg2) for ``config``, with ``params`` as query parameters."""
    from sqlalchemy.engine import URL, make_url

    if config.url is not None:
        url = make_url(config.url.get_secret_value()).set(drivername=DRIVERNAME)
        query = dict(url.query)
    else:
        query = {}
        host = config.host
        if host and host.startswith("/"):  # a Unix socket directory goes in the query string
            query["host"] = host
            host = None
        url = URL.create(DRIVERNAME, username=config.user,
                         password=config.password.get_secret_value() if config.password else None,
                         host=host, port=config.port if host else None, database=config.database)
    query.update(config.params)
    return url.set(query=query)


def libpq_options(config: PostgresStorageConfig, url: Any) -> dict[str, Any]:
    """Connection arguments for psycopg2 besides the URL: timeouts, keepalives, session settings."""
    query = dict(url.query)
    args: dict[str, Any] = {
        "connect_timeout": config.connect_timeout,
        "application_name": config.application_name,
        # notice a dead peer in about a minute even on an idle (listening) connection
        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    }
    options = [query.get("options", "")] if query.get("options") else []
    if config.statement_timeout_ms:
        options.append(f"-c statement_timeout={int(config.statement_timeout_ms)}")
    if options:
        args["options"] = " ".join(options)
    for key in list(args):
        if key in query and key != "options":  # what the user set in the URL or params wins
            del args[key]
    return args
