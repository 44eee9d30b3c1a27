"""Entry point of the ``runyard-executor-multiprocess`` distribution."""

from runyard import hookimpl


@hookimpl
def runyard_register_executor(registry):
    registry.add("multiprocess", "runyard_executor_multiprocess.executor:MultiprocessExecutor")
