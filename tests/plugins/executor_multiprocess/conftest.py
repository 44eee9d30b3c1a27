"""Fixtures for the runyard-executor-multiprocess tests.

Needs: runyard, runyard-storage-sqlite and runyard-executor-multiprocess installed (the tox env
``executor_multiprocess`` installs them); real processes and signals; Linux /proc.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard import Instance


@pytest.fixture
def instance(home: Path):
    """The test home opened in this process (real SQLite file at <home>/runyard.db)."""
    inst = Instance.open(home=str(home))
    yield inst
    inst.dispose()
