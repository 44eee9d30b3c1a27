"""The ``postgres`` storage's config model and the SQLAlchemy URL built from it.

No SQLAlchemy or psycopg2 import at module level: validating an instance file stays cheap.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from runyard.storage.sql.server import ServerStorageConfig, check_scheme

#: URL schemes users may write; all mean psycopg2 (SQLAlchemy 2.1 maps a bare ``postgresql://`` to
#: psycopg 3, which this plugin does not use).
ACCEPTED_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
DRIVERNAME = "postgresql+psycopg2"
URL_FORM = "postgresql://user:password@host:port/database"


class PostgresStorageConfig(ServerStorageConfig):
    """Either ``url``, or ``host``/``port``/``user``/``password``/``database``; ``params`` with both."""

    url_form: ClassVar[str] = URL_FORM

    host: str | None = Field(None, description="Server host name or IP, or a Unix socket directory.")
    port: int = Field(5432, ge=1, le=65535)
    params: dict[str, str] = Field(default_factory=dict,
                                   description="Extra libpq connection parameters (sslmode, ...).")
    statement_timeout_ms: int = Field(60_000, ge=0, description="Server-side limit per statement; 0: none.")
    application_name: str = Field("runyard", description="Shown in pg_stat_activity.")
    notifications: bool = Field(True, description="LISTEN for wake-ups (false: poll, e.g. behind a "
                                                  "transaction-mode connection pooler). Writes always NOTIFY.")
    poll_interval: float = Field(0.5, gt=0, description="Seconds between looks when polling.")
    reconnect_timeout: float = Field(60.0, ge=0, description="How long an operation retries after a "
                                                             "dropped connection before it fails.")

    @classmethod
    def check_url(cls, raw: str) -> None:
        check_url(raw)


def check_url(raw: str) -> None:
    """Reject what SQLAlchemy would reject later with a less helpful message (no secrets in it)."""
    check_scheme(raw, accepted=ACCEPTED_SCHEMES, families=("postgresql", "postgres"), url_form=URL_FORM,
                 distribution="runyard-storage-postgres", driver="psycopg2",
                 write="postgresql://... or postgresql+psycopg2://...")


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
