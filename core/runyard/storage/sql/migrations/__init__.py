"""Alembic migrations for the shared SQL schema, driven programmatically (no alembic.ini needed).

``runyard instance migrate`` calls :func:`upgrade`; a brand-new database is created through the same
path, so a fresh install and a migrated one have the same schema.
"""

from __future__ import annotations

import os
from functools import lru_cache

from sqlalchemy.engine import Connection

HERE = os.path.dirname(os.path.abspath(__file__))


def _config(connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", HERE)
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(_config(connection), revision)


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions())


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()
