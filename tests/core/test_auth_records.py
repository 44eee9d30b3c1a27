"""The token and audit records, durations, and what a storage without token support answers.
(Storage behaviour itself is the conformance suite's, run by each storage plugin's tests.)

Needs: nothing (in-process; one SQLite file under tmp_path).
"""

from __future__ import annotations

import pytest

from runyard.auth import AuthError, Role, new_token, principal_for_token, token_id_of, verify_token
from runyard.operations.tokens import create_token, parse_duration, revoke_token, token_status
from runyard.storage.base import RunStorage
from runyard.storage.records import ApiToken, AuditEntry, AuditResult


def token(**kwargs) -> ApiToken:
    fields = {"token_id": "0123456789ab", "name": "ci", "role": "editor", "locations": None, "digest": "d",
              "created_at": 100.0, "created_by": "alice"}
    return ApiToken(**{**fields, **kwargs})


def test_token_record_coerces_role_and_locations_and_knows_when_it_is_active():
    t = token(locations=["etl", "reports"], expires_at=200.0)
    assert t.role is Role.EDITOR and t.locations == ("etl", "reports")
    assert t.active(199.9) and not t.active(200.0)
    assert token(expires_at=None).active(1e12)
    assert not token(revoked_at=150.0).active(120.0)
    assert [token_status(x, 150.0) for x in (t, token(expires_at=120.0), token(revoked_at=1.0))] == [
        "active", "expired", "revoked"]
    with pytest.raises(AuthError, match="unknown role 'root'"):
        token(role="root")


def test_audit_entry_result_is_one_of_three():
    entry = AuditEntry(action="launchRun", actor="a", via="basic", result="refused", timestamp=1.0)
    assert entry.result is AuditResult.REFUSED and entry.result == "refused" and str(entry.result) == "refused"
    assert entry.to_dict()["result"] == "refused" and entry.details == {}
    with pytest.raises(ValueError, match="'maybe' is not one of ok, refused, failed"):
        AuditEntry(action="x", actor="a", via="cli", result="maybe", timestamp=1.0)


@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45),
                                           ("2w", 14 * 86400), (" 7d ", 7 * 86400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "1.5d", "-1d", "0h", "3 days", "36501d", "1y"])
def test_bad_durations(text):
    with pytest.raises(AuthError, match="bad duration"):
        parse_duration(text)


def test_token_text_shape():
    made = new_token()
    assert made.secret.startswith(f"ryt_{made.token_id}_") and token_id_of(made.secret) == made.token_id
    assert len(made.token_id) == 12 and made.digest != made.secret
    for bad in ("", "ryt_", "ryt_0123456789ab", "ryt_0123456789ab_", "xyz_0123456789ab_s", "ryt_0123456789AB_s"):
        assert token_id_of(bad) is None, bad


class Bare(RunStorage):
    """A storage written before API tokens existed: every abstract method, none of the new ones."""


for _name in list(Bare.__abstractmethods__):
    setattr(Bare, _name, lambda self, *a, **k: None)
Bare.__abstractmethods__ = frozenset()


def test_a_storage_without_tokens_says_so():
    bare = Bare()
    with pytest.raises(NotImplementedError, match="Bare does not store API tokens"):
        bare.list_api_tokens()
    with pytest.raises(NotImplementedError, match="Bare does not store audit entries"):
        bare.get_audit_entries()
    with pytest.raises(AuthError, match="Bare does not store API tokens: API tokens need a storage"):
        create_token(bare, "ci", "viewer", actor="me", via="cli")
    with pytest.raises(AuthError, match="does not store API tokens"):
        revoke_token(bare, "ci", actor="me", via="cli")


def test_create_and_revoke_through_the_operations(tmp_path):
    from runyard_storage_sqlite.storage import SqliteRunStorage

    storage = SqliteRunStorage(str(tmp_path / "r.db"))
    storage.check_ready()
    try:
        made, secret = create_token(storage, "ci", Role.ADMIN, locations=["etl", "etl"], expires_in=60.0,
                                    actor="alice", via="cli", now=1000.0)
        assert made.locations == ("etl",) and made.expires_at == 1060.0 and made.created_by == "alice"
        assert verify_token(storage, secret, 1059.0) == made and verify_token(storage, secret, 1060.0) is None
        assert principal_for_token(made).role is Role.ADMIN
        revoked = revoke_token(storage, "ci", actor="bob", via="cli", now=1001.0)
        assert revoked.revoked_at == 1001.0
        with pytest.raises(AuthError, match="already revoked"):
            revoke_token(storage, made.token_id, actor="bob", via="cli")
        assert [(e.action, e.actor, e.timestamp) for e in storage.get_audit_entries()] == [
            ("token.revoke", "bob", 1001.0), ("token.create", "alice", 1000.0)]
    finally:
        storage.dispose()
