"""The ``mysql`` storage's config model and the SQLAlchemy URL built from it.

No SQLAlchemy or PyMySQL import at module level: validating an instance file stays cheap.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

#: URL schemes users may write; all mean PyMySQL, which talks to MySQL and MariaDB alike.
ACCEPTED_SCHEMES = ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql")
DRIVERNAME = "mysql+pymysql"
URL_FORM = "mysql://user:password@host:3306/database"


class MysqlStorageConfig(BaseModel):
    """Either ``url``, or ``host``/``port``/``user``/``password``/``database``; ``params`` with both."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = Field(None, description=URL_FORM)
    host: str | None = Field(None, description="Server host name or IP.")
    port: int = Field(3306, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    unix_socket: str | None = Field(None, description="Connect through this socket file instead of TCP.")
    params: dict[str, str] = Field(default_factory=dict,
                                   description="Extra PyMySQL connection arguments (ssl_ca, ...).")
    pool_size: int = Field(5, ge=1, description="Connections a process keeps open.")
    max_overflow: int = Field(5, ge=0, description="Extra connections a process may open under load.")
    pool_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a free pooled connection.")
    pool_recycle: float = Field(3600.0, description="Replace connections older than this (s); <= 0: never. "
                                                    "Keep it below the server's wait_timeout.")
    connect_timeout: int = Field(10, ge=1, description="Seconds to wait for a new connection.")
    poll_interval: float = Field(0.25, gt=0, description="Seconds between looks when waiting for changes.")

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> MysqlStorageConfig:
        parts = [k for k in ("host", "user", "password", "database", "unix_socket") if getattr(self, k) is not None]
        if self.url is not None:
            if parts or "port" in self.model_fields_set:
                raise ValueError(f"give either url or host/port/user/password/database, not both "
                                 f"(got url and {', '.join(parts or ['port'])})")
            try:
                check_url(self.url.get_secret_value())
            except ValueError as exc:  # reported at the model level: the input (a secret) is not echoed
                raise ValueError(f"url: {exc}") from None
        elif not parts:
            raise ValueError(f"set url ({URL_FORM}) or host and database")
        elif self.database is None:
            raise ValueError("database is required (the name of an existing database)")
        return self


def check_url(raw: str) -> None:
    """Reject what SQLAlchemy would reject later with a less helpful message (no secrets in it)."""
    if "://" not in raw:
        raise ValueError(f"url must look like {URL_FORM}")
    scheme = raw.split("://", 1)[0]
    if scheme not in ACCEPTED_SCHEMES:
        if "+" in scheme and scheme.split("+", 1)[0] in ("mysql", "mariadb"):
            driver = scheme.split("+", 1)[1]
            raise ValueError(f"URL driver '{driver}' is not supported: runyard-storage-mysql uses PyMySQL "
                             f"(write mysql://... or mysql+pymysql://...)")
        close = difflib.get_close_matches(scheme, ACCEPTED_SCHEMES, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unsupported URL scheme '{scheme}'{hint}: expected {URL_FORM}")
    from sqlalchemy.engine import make_url

    try:
        url = make_url(raw)
    except Exception:  # noqa: BLE001 - its message may quote the password: never pass it on
        raise ValueError("the URL cannot be parsed: check the port, and write special characters of the "
                         "user name or password as %XX (@ as %40, : as %3A, / as %2F)") from None
    if not url.database:
        raise ValueError(f"the URL names no database: {URL_FORM}")


def build_url(config: MysqlStorageConfig) -> Any:
    """The SQLAlchemy URL (driver PyMySQL) for ``config``."""
    from sqlalchemy.engine import URL, make_url

    if config.url is not None:
        return make_url(config.url.get_secret_value()).set(drivername=DRIVERNAME)
    query = {"unix_socket": config.unix_socket} if config.unix_socket else {}
    return URL.create(DRIVERNAME, username=config.user,
                      password=config.password.get_secret_value() if config.password else None,
                      host=config.host, port=config.port if config.host else None,
                      database=config.database, query=query)


def connect_args(config: MysqlStorageConfig, url: Any) -> dict[str, Any]:
    """PyMySQL arguments besides the URL: utf8mb4, the connect timeout, then ``params``."""
    args: dict[str, Any] = {"charset": "utf8mb4", "connect_timeout": config.connect_timeout}
    for key in list(args):
        if key in url.query:  # what the user set in the URL wins
            del args[key]
    args.update(config.params)
    return args
