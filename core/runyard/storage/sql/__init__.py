"""The shared SQL implementation of :class:`runyard.storage.base.RunStorage` (SQLAlchemy Core 2).

A backend plugin creates an engine and hands it to :class:`SqlRunStorage`. What differs between
databases comes from the :class:`SqlDialect` registered for the engine's dialect
(:mod:`.dialects`; runyard ships SQLite, PostgreSQL and MySQL/MariaDB, a plugin registers another
with :func:`register_dialect`); the schema's column types are in :mod:`.types`. :mod:`.transfer`
copies one SQL storage into another.
"""

from .dialects import SqlDialect, register_dialect
from .storage import SqlRunStorage

__all__ = ["SqlDialect", "SqlRunStorage", "register_dialect"]
