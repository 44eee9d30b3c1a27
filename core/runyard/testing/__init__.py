"""Conformance suites and test helpers that any plugin author can run against their own component.

Subclass a suite in your test module and provide its fixture::

    from runyard.testing.storage import StorageConformanceSuite

    class TestMyStorage(StorageConformanceSuite):
        @pytest.fixture
        def storage(self, tmp_path):
            s = MyStorage(...)
            s.check_ready()          # create the schema
            yield s
            s.dispose()

The suites: :mod:`.storage` (with :mod:`.access`), :mod:`.launcher`, :mod:`.coordinator`, :mod:`.executor`,
:mod:`.containment`. The helpers they build on are public (:mod:`.helpers`) and importable
from here: :func:`wait_until`, :func:`pid_gone`, :func:`live_pids_in_group`, :func:`live_children`,
:func:`descendants`, :func:`kill_group`, :func:`processes_with_env`, :func:`stop_processes_with_env`,
:func:`read_value_after`, :func:`storage_contents` and :class:`SuiteHome`.
"""

# The suites' plain ``assert`` statements must show the values that failed, as in the author's own
# test modules: pytest rewrites only modules it is told about, and only when they are imported after
# this call, hence before anything below imports a suite. Without pytest (a plain
# ``import runyard.testing``) there is nothing to register.
try:
    import pytest
except ImportError:  # pragma: no cover - pytest is not installed
    pass
else:
    pytest.register_assert_rewrite("runyard.testing.storage", "runyard.testing.launcher",
                                   "runyard.testing.coordinator", "runyard.testing.executor",
                                   "runyard.testing.helpers", "runyard.testing.containment",
                                   "runyard.testing.runs_list", "runyard.testing.access",
                                   "runyard.testing.partitions", "runyard.testing.executor_partitions")

from .helpers import (  # noqa: E402 - after the rewrite registration above
    PREAMBLE,
    SuiteHome,
    descendants,
    kill_group,
    live_children,
    live_pids_in_group,
    pid_gone,
    processes_with_env,
    read_value_after,
    stop_processes_with_env,
    storage_contents,
    wait_until,
)

__all__ = ["PREAMBLE", "SuiteHome", "descendants", "kill_group", "live_children", "live_pids_in_group",
           "pid_gone", "processes_with_env", "read_value_after", "stop_processes_with_env", "storage_contents",
           "wait_until"]
