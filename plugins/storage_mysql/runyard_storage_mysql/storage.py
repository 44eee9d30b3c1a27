"""MysqlRunStorage: the shared SQL storage on MySQL 8.0.17+ or MariaDB 10.6+.

This module only builds the engine — a bounded pool per process, PyMySQL with ``utf8mb4`` — exactly
as docs/plugin-authors.md tells a storage author to. Everything MySQL needs beyond that (DOUBLE
times, LONGTEXT, binary ``NO PAD`` collations, READ COMMITTED and strict mode on each connection,
``FOR UPDATE SKIP LOCKED`` claims, a row lock per run that orders event writers, ``GET_LOCK``
around first-time schema creation, retrying deadlock victims) comes from
:class:`runyard.storage.sql.dialects.MysqlDialect`, which the shared storage looks up by the
engine's dialect name.
"""

from __future__ import annotations

from typing import Any

from runyard.component import ComponentContext
from runyard.storage.sql import SqlRunStorage
from runyard.storage.sql.server import pooled_engine

from .config import MysqlStorageConfig, build_url, connect_args


class MysqlRunStorage(SqlRunStorage):
    config_model = MysqlStorageConfig

    def __init__(self, config: MysqlStorageConfig):
        self.config = config
        url = build_url(config)
        engine = pooled_engine(url, config, connect_args(config, url))
        display = url.set(drivername="mysql").render_as_string(hide_password=True)
        super().__init__(engine, display_url=display)
        self.poll_interval = config.poll_interval

    @classmethod
    def from_config(cls, config: MysqlStorageConfig, context: ComponentContext) -> MysqlRunStorage:
        return cls(config)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        cfg = self.config
        info["pool"] = f"{cfg.pool_size} + {cfg.max_overflow} overflow per process, recycle {cfg.pool_recycle:g}s"
        return info
