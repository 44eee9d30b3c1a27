"""``runyard daemon``: schedule ticks, sensor evaluations, the run queue and run monitoring, with a
leader lease so several replicas can run against one storage (see docs/daemon.md)."""

from .daemon import Daemon

__all__ = ["Daemon"]
