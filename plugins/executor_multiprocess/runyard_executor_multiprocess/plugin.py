"""Entry point of the ``runyard-executor-multiprocess`` distribution."""

from runyard import hookimpl


@hookimpl
def runyard_register_executor(registry):
    from .executor import MultiprocessExecutor

    registry.add("multiprocess", MultiprocessExecutor)
