"""Entry point of the ``runyard-storage-sqlite`` distribution."""

from runyard.plugins import hookimpl


@hookimpl
def runyard_register_storage(registry):
    from .storage import SqliteRunStorage

    registry.add("sqlite", SqliteRunStorage)
