"""Entry point of the ``runyard-storage-sqlite`` distribution."""

from runyard import hookimpl


@hookimpl
def runyard_register_storage(registry):
    registry.add("sqlite", "runyard_storage_sqlite.storage:SqliteRunStorage")
