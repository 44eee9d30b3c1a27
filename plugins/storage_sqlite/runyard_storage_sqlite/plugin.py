"""Entry point of the ``runyard-storage-sqlite`` distribution."""

from runyard import hookimpl


@hookimpl
def runyard_register_storage(registry):
    from .storage import SqliteRunStorage

    registry.add("sqlite", SqliteRunStorage)
