"""The ``mysql`` storage's config model and the SQLAlchemy URL built from it.

No SQLAlchemy or PyMySQL import at module level: validating an instance file stays cheap.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from runyard.storage.sql.server import ServerStorageConfig, check_scheme

#: URL schemes users may write; all mean PyMySQL, which talks to MySQL and MariaDB alike.
ACCEPTED_SCHEMES = ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql")
DRIVERNAME = "mysql+pymysql"
URL_FORM = "mysql://user:password@host:3306/database"


class MysqlStorageConfig(ServerStorageConfig):
    """Either ``url``, or ``host``/``port``/``user``/``password``/``database``; ``params`` with both."""

    url_form: ClassVar[str] = URL_FORM
    location_keys: ClassVar[tuple[str, ...]] = ("unix_socket",)

    port: int = Field(3306, ge=1, le=65535)
    unix_socket: str | None = Field(None, description="Connect through this socket file instead of TCP.")
    params: dict[str, str] = Field(default_factory=dict,
                                   description="Extra PyMySQL connection arguments (ssl_ca, ...).")
    pool_recycle: float = Field(3600.0, description="Replace connections older than this (s); <= 0: never. "
                                                    "Keep it below the server's wait_timeout.")
    poll_interval: float = Field(0.25, gt=0, description="Seconds between looks when waiting for changes.")

    @classmethod
    def check_url(cls, raw: str) -> None:
        check_url(raw)


def check_url(raw: str) -> None:
    """Reject what SQLAlchemy would reject later with a less helpful message (no secrets in it)."""
    check_scheme(raw, accepted=ACCEPTED_SCHEMES, families=("mysql", "mariadb"), url_form=URL_FORM,
                 distribution="runyard-storage-mysql", driver="PyMySQL",
                 write="mysql://... or mysql+pymysql://...")
    from sqlalchemy.engine import make_url

    if not make_url(raw).database:
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
