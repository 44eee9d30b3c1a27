"""The storage suite's token and audit checks catch what they claim to: each broken storage below
subclasses the SQLite one with exactly one defect, and the suite's check for it fails (run by
pytester in a pytest subprocess, as a plugin author would run the suite) showing the values that
differ. The built-in storages pass the same checks in tests/plugins/storage_*.

Needs: real subprocesses and SQLite files under pytest's tmp_path.
"""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

BROKEN_STORAGES = '''
from dataclasses import replace

from runyard_storage_sqlite.storage import SqliteRunStorage


class RevokesTwice(SqliteRunStorage):
    """revoke_api_token is not a compare-and-set: revoking again answers True and moves the time."""

    def revoke_api_token(self, token_id, when):
        from sqlalchemy import update
        from runyard.storage.sql import schema as s

        return self.transact(lambda conn: conn.execute(update(s.api_tokens).where(
            s.api_tokens.c.token_id == token_id).values(revoked_at=when)).rowcount == 1)


class ListsRevoked(SqliteRunStorage):
    """list_api_tokens ignores include_revoked."""

    def list_api_tokens(self, include_revoked=False):
        return super().list_api_tokens(include_revoked=True)


class TouchesBackwards(SqliteRunStorage):
    """touch_api_token overwrites a later use with an earlier one."""

    def touch_api_token(self, token_id, when):
        from sqlalchemy import update
        from runyard.storage.sql import schema as s

        self.transact(lambda conn: conn.execute(update(s.api_tokens).where(
            s.api_tokens.c.token_id == token_id).values(last_used_at=when)))


class KeepsNoExpiry(SqliteRunStorage):
    """expires_at is not stored: an expired token keeps working."""

    def add_api_token(self, token):
        super().add_api_token(replace(token, expires_at=None))


class OldestFirst(SqliteRunStorage):
    """The audit log is answered oldest first."""

    def get_audit_entries(self, filters=None, limit=50, before_id=None):
        return sorted(super().get_audit_entries(filters, limit, before_id), key=lambda e: e.id)


class FoldsActorCase(SqliteRunStorage):
    """Audit filters compare actors without case (as MySQL's default collation would)."""

    def get_audit_entries(self, filters=None, limit=50, before_id=None):
        if filters is None or filters.actor is None:
            return super().get_audit_entries(filters, limit, before_id)
        wanted = filters.actor.lower()
        every = super().get_audit_entries(replace(filters, actor=None), limit, before_id)
        return [e for e in every if e.actor.lower() == wanted]
'''

SUITE = '''
import functools

import pytest

from runyard.testing.storage import SqlStorageConformanceSuite
import broken_storages


class TestBroken(SqlStorageConformanceSuite):
    @pytest.fixture
    def storage(self, tmp_path):
        s = broken_storages.{cls}(str(tmp_path / "runyard.db"))
        s.check_ready()
        yield s
        s.dispose()

    @pytest.fixture
    def fresh_storage_opener(self, tmp_path):
        return functools.partial(broken_storages.{cls}, str(tmp_path / "fresh.db"))
'''


@pytest.mark.parametrize("cls, test, says", [
    ("RevokesTwice", "test_revoke_is_compare_and_set", ["*assert True is False*"]),
    ("ListsRevoked", "test_api_tokens_list_newest_first_without_revoked_ones", ["*'t1'*"]),
    ("TouchesBackwards", "test_touch_records_last_use_and_never_goes_backwards", ["*400.0 == 500.5*"]),
    ("KeepsNoExpiry", "test_api_token_round_trips_every_field", ["*expires_at*"]),
    ("OldestFirst", "test_audit_entries_newest_first_and_page_by_id", ["*assert [[]1, 2, 3*"]),
    ("FoldsActorCase", "test_audit_filters_are_exact_and_combine", ["*101.0*"]),
])
def test_the_suite_catches_the_defect(pytester, cls, test, says):
    pytester.makepyfile(broken_storages=BROKEN_STORAGES)
    pytester.makepyfile(test_broken_storage=SUITE.format(cls=cls))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", test, timeout=180)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(says)


def test_a_sound_storage_passes_those_checks(pytester):
    from runyard.testing.access import AccessRecordsChecks

    checks = [name for name in dir(AccessRecordsChecks) if name.startswith("test_")]
    pytester.makepyfile(broken_storages=BROKEN_STORAGES + "\n\nclass Sound(SqliteRunStorage):\n    pass\n")
    pytester.makepyfile(test_broken_storage=SUITE.format(cls="Sound"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", " or ".join(checks), timeout=300)
    result.assert_outcomes(passed=len(checks))
