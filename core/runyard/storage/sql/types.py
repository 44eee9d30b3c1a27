"""The column types of the shared schema, right on every dialect.

Each is a SQLAlchemy ``TypeDecorator`` that asks the :class:`~runyard.storage.sql.dialects.SqlDialect`
registered for the database's dialect which concrete type to use, so the schema and its Alembic
migrations need no per-dialect branches, and a plugin for another dialect changes the types by
registering its own ``SqlDialect`` (see docs/plugin-authors.md):

* :class:`Timestamp` — seconds since the epoch as a double (8-byte float): ``Float`` is single
  precision on MySQL, which puts a ``created_at`` of today off by minutes.
* :class:`LongText` — JSON, messages and tag values: at least 16 MiB (MySQL's ``TEXT`` stops at
  64 KiB). ``exact=True`` when the column is compared with ``=`` (tag values).
* :class:`Key` — a bounded string that is indexed or part of a key, compared exactly: case,
  accents and trailing spaces all count (MySQL's default collations fold them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# BigInteger ids, INTEGER PRIMARY KEY (the rowid alias) on SQLite.
EventId = BigInteger().with_variant(Integer(), "sqlite")


def _support(dialect: Dialect) -> Any:
    from .dialects import dialect_for

    return dialect_for(dialect.name)


class Timestamp(TypeDecorator):
    """Epoch seconds as a double-precision float."""

    impl = Float
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _support(dialect).timestamp_type(dialect)


class LongText(TypeDecorator):
    """Unbounded text (at least 16 MiB). ``exact``: compared with ``=``, so case and accents count."""

    impl = Text
    cache_ok = True

    def __init__(self, exact: bool = False):
        super().__init__()
        self.exact = exact

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _support(dialect).text_type(dialect, exact=self.exact)


class Key(TypeDecorator):
    """A string of at most ``length`` characters that is indexed, unique or compared: exact
    (case-, accent- and trailing-space-sensitive) on every dialect."""

    impl = String
    cache_ok = True

    def __init__(self, length: int):
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _support(dialect).key_type(dialect, self.length)
