"""Entry point of the ``runyard-storage-mysql`` distribution. Importing it is cheap: the storage
module (SQLAlchemy, PyMySQL) loads only when an instance selects ``mysql``."""

from runyard import hookimpl


@hookimpl
def runyard_register_storage(registry):
    registry.add("mysql", "runyard_storage_mysql.storage:MysqlRunStorage")
