"""Conformance suites that any plugin author can run against their own component.

Subclass a suite in your test module and provide its fixture::

    from runyard.testing.storage import StorageConformanceSuite

    class TestMyStorage(StorageConformanceSuite):
        @pytest.fixture
        def storage(self, tmp_path):
            s = MyStorage(...)
            s.check_ready()          # create the schema
            yield s
            s.dispose()
"""
