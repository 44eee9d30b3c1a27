"""Entry point of the ``runyard-storage-postgres`` distribution. Importing it is cheap: the storage
module (SQLAlchemy, psycopg2) loads only when an instance selects ``postgres``."""

from runyard import hookimpl


@hookimpl
def runyard_register_storage(registry):
    registry.add("postgres", "runyard_storage_postgres.storage:PostgresRunStorage")
