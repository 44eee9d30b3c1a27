"""The storage conformance suite catches what a MySQL storage written without runyard's MySQL dialect
gets wrong: each case below registers a dialect with exactly one of those defects (case-insensitive
keys, single-precision times, 64 KiB text, event writers that do not take turns) and runs the suite's
check for it in a pytest subprocess, as a plugin author would; that check fails and says why.

Needs: MariaDB or MySQL at $RUNYARD_TEST_MYSQL_URL (see conftest.py); each check makes and drops its
own database.
"""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

SUITE = '''
import functools

import pytest
from sqlalchemy import Float, String, Text

from runyard.storage.sql import register_dialect
from runyard.storage.sql.dialects import MysqlDialect
from runyard.testing.storage import SqlStorageConformanceSuite
from runyard_storage_mysql.config import MysqlStorageConfig
from runyard_storage_mysql.storage import MysqlRunStorage
from runyard_storage_mysql.testing import create_database, drop_database, open_storage


class Naive(MysqlDialect):
{defect}


register_dialect(Naive())


class TestNaiveMysql(SqlStorageConformanceSuite):
    @pytest.fixture
    def storage(self):
        url = create_database(prefix="runyard_naive")
        storage = open_storage(url)
        yield storage
        storage.dispose()
        drop_database(url)

    @pytest.fixture
    def fresh_storage_opener(self):
        url = create_database(prefix="runyard_naive")
        yield functools.partial(MysqlRunStorage, MysqlStorageConfig(url=url))
        drop_database(url)
'''

DEFECTS = {
    "case-insensitive keys": (
        "    def key_type(self, dialect, length):\n"
        "        return String(length, collation='utf8mb4_general_ci')\n",
        "test_run_keys_are_case_and_accent_sensitive", "*where False = claim_run_key('sensor', 'file_a.csv', 'r1')*"),
    "single-precision times": (
        "    def timestamp_type(self, dialect):\n"
        "        return Float()\n",
        "test_times_keep_double_precision", "*At index 0 diff: 1764000000.0 != 1764000000.123456*"),
    "64 KiB text": (
        "    def text_type(self, dialect, *, exact):\n"
        "        return Text(collation='utf8mb4_bin')\n",
        "test_megabytes_of_text_in_every_kind_of_field", "*Data too long*"),
    "event writers that do not take turns": (
        "    def lock_runs(self, conn, run_ids):\n"
        "        pass\n",
        "test_a_runs_event_writers_take_turns", "*\"second\" must not commit before \"first\"*"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_the_suite_catches_a_naive_mysql_dialect(pytester, my_admin_url, defect):
    code, test, says = DEFECTS[defect]
    pytester.makepyfile(test_naive=SUITE.format(defect=code))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", test, timeout=180)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([says])
