"""The shared SQL implementation of :class:`runyard.storage.base.RunStorage` (SQLAlchemy Core 2).

A backend plugin creates an engine and hands it to :class:`SqlRunStorage`; it may override the few
dialect hooks (``_begin_write``, ``_insert_ignore``) to use its database's strengths.
"""

from .storage import SqlRunStorage

__all__ = ["SqlRunStorage"]
