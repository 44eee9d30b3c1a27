"""Copy everything from one SQL storage into another: how an instance moves between backends
(``runyard instance migrate --from OLD_INSTANCE_FILE``, e.g. SQLite to Postgres).

Both storages must be at the schema head (the caller migrates them first). The target must be empty.
Rows keep their keys — run ids, event ids, tick ids — so cursors, links and run ids stay valid; the
target's id sequences are moved past the copied ids afterwards. The whole copy is one transaction on
the target: it lands completely or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, func, insert, select, tuple_
from sqlalchemy.engine import Connection

from ...errors import StorageError
from . import schema as s
from .storage import SqlRunStorage

CHUNK = 2000


def _pages(source: SqlRunStorage, table: Table) -> Any:
    """The table's rows in primary-key order, a page at a time (keyset pagination: no OFFSET)."""
    pk = list(table.primary_key.columns)
    last: tuple | None = None
    while True:
        query = select(table).order_by(*pk).limit(CHUNK)
        if last is not None:
            query = query.where(pk[0] > last[0] if len(pk) == 1 else tuple_(*pk) > tuple_(*last))
        rows = source.query(lambda conn, q=query: conn.execute(q).all())
        if not rows:
            return
        yield [dict(r._mapping) for r in rows]
        last = tuple(rows[-1]._mapping[c.name] for c in pk)
        if len(rows) < CHUNK:
            return


def copy_storage(source: SqlRunStorage, target: SqlRunStorage,
                 progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every table's rows from ``source`` to ``target``; return rows copied per table."""
    if not isinstance(source, SqlRunStorage) or not isinstance(target, SqlRunStorage):
        raise StorageError("copying needs two SQL storages (runyard.storage.sql.SqlRunStorage)")
    if source.display_url == target.display_url:
        raise StorageError(f"the source and the target are the same storage ({target.display_url})")
    for st in (source, target):
        if st.schema_revision() != s.HEAD_REVISION:
            raise StorageError(f"{st.display_url} is at schema revision {st.schema_revision()}, not "
                               f"{s.HEAD_REVISION}: migrate it first")
    tables = list(s.metadata.sorted_tables)
    busy = {t.name: n for t in tables
            if (n := target.query(lambda conn, t=t: conn.execute(select(func.count()).select_from(t)).scalar()))}
    if busy:
        listed = ", ".join(f"{name} ({n})" for name, n in busy.items())
        raise StorageError(f"the target storage {target.display_url} is not empty ({listed} rows): "
                           "copy into a new, empty database")

    def copy(conn: Connection) -> dict[str, int]:
        counts: dict[str, int] = {}
        for table in tables:
            n = 0
            for rows in _pages(source, table):
                conn.execute(insert(table), rows)
                n += len(rows)
            counts[table.name] = n
            if progress:
                progress(table.name, n)
        target.dialect.after_copy(conn)
        return counts

    return target.transact(copy)
