"""The storage conformance checks of API tokens and the audit log (docs/auth.md).

Part of :class:`runyard.testing.storage.StorageConformanceSuite` (which inherits these tests); they
use its ``storage`` and ``storage_factory`` fixtures.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from ..auth import Role, new_token, principal_for_token, token_problem, verify_token
from ..storage.records import ApiToken, AuditEntry, AuditFilter, AuditResult


def make_token(name: str = "ci", role: Role | str = Role.VIEWER, *, created_at: float | None = None,
               **kwargs) -> tuple[ApiToken, str]:
    """A new token record and its secret (what a client sends)."""
    made = new_token()
    kwargs.setdefault("locations", None)
    kwargs.setdefault("created_by", "suite")
    token = ApiToken(token_id=made.token_id, name=name, role=role, digest=made.digest,
                     created_at=time.time() if created_at is None else created_at, **kwargs)
    return token, made.secret


def make_entry(action: str = "launchRun", actor: str = "alice", result: str = "ok", **kwargs) -> AuditEntry:
    kwargs.setdefault("via", "basic")
    kwargs.setdefault("timestamp", time.time())
    return AuditEntry(action=action, actor=actor, result=result, **kwargs)


class AccessRecordsChecks:
    """API tokens and the audit log: what every storage keeps and answers."""

    # ---- API tokens ------------------------------------------------------------------------------
    def test_api_token_round_trips_every_field(self, storage):
        token, _ = make_token("deploy bot ✓", Role.EDITOR, created_at=1_700_000_000.123456,
                              locations=("etl", "Reports"), created_by="alice", expires_at=1_800_000_000.5,
                              last_used_at=1_700_000_100.25)
        storage.add_api_token(token)
        assert storage.get_api_token(token.token_id) == token
        plain, _ = make_token("plain")
        storage.add_api_token(plain)
        got = storage.get_api_token(plain.token_id)
        assert got == plain
        assert got.locations is None and got.expires_at is None and got.revoked_at is None
        assert storage.get_api_token("000000000000") is None

    def test_api_token_ids_are_unique_names_may_repeat(self, storage):
        first, _ = make_token("ci")
        storage.add_api_token(first)
        again, _ = make_token("ci")
        storage.add_api_token(again)
        assert {t.token_id for t in storage.list_api_tokens()} == {first.token_id, again.token_id}
        clash, _ = make_token("other")
        with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
            storage.add_api_token(replace(clash, token_id=first.token_id))
        assert storage.get_api_token(first.token_id).name == "ci"

    def test_api_tokens_list_newest_first_without_revoked_ones(self, storage):
        tokens = [make_token(f"t{i}", created_at=1000.0 + i)[0] for i in range(4)]
        for token in (tokens[2], tokens[0], tokens[3], tokens[1]):
            storage.add_api_token(token)
        assert [t.name for t in storage.list_api_tokens()] == ["t3", "t2", "t1", "t0"]
        assert storage.revoke_api_token(tokens[1].token_id, 2000.0)
        assert [t.name for t in storage.list_api_tokens()] == ["t3", "t2", "t0"]
        listed = storage.list_api_tokens(include_revoked=True)
        assert [t.name for t in listed] == ["t3", "t2", "t1", "t0"]
        assert listed[2].revoked_at == 2000.0

    def test_revoke_is_compare_and_set(self, storage):
        token, _ = make_token()
        storage.add_api_token(token)
        assert storage.revoke_api_token(token.token_id, 50.0) is True
        assert storage.revoke_api_token(token.token_id, 60.0) is False
        assert storage.get_api_token(token.token_id).revoked_at == 50.0
        assert storage.revoke_api_token("ffffffffffff", 60.0) is False
        assert storage.get_api_token("ffffffffffff") is None

    def test_racing_revokes_have_one_winner(self, storage, storage_factory):
        token, _ = make_token()
        storage.add_api_token(token)
        others = [storage_factory() for _ in range(4)]
        start = threading.Barrier(len(others))
        answers: list[bool] = []

        def revoke(s, when: float) -> None:
            start.wait(20)
            answers.append(s.revoke_api_token(token.token_id, when))

        threads = [threading.Thread(target=revoke, args=(s, 100.0 + i)) for i, s in enumerate(others)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(answers) == [False, False, False, True]
        assert storage.get_api_token(token.token_id).revoked_at in {100.0, 101.0, 102.0, 103.0}

    def test_touch_records_last_use_and_never_goes_backwards(self, storage):
        token, _ = make_token()
        storage.add_api_token(token)
        storage.touch_api_token(token.token_id, 500.5)
        assert storage.get_api_token(token.token_id).last_used_at == 500.5
        storage.touch_api_token(token.token_id, 400.0)  # a slower process's older use
        assert storage.get_api_token(token.token_id).last_used_at == 500.5
        storage.touch_api_token(token.token_id, 600.0)
        assert storage.get_api_token(token.token_id).last_used_at == 600.0
        storage.touch_api_token("ffffffffffff", 700.0)  # unknown: nothing to record, no error

    def test_verify_token_accepts_only_a_usable_token(self, storage):
        now = time.time()
        good, secret = make_token("ci", Role.LAUNCHER, locations=("etl",), expires_at=now + 3600)
        storage.add_api_token(good)
        assert verify_token(storage, secret, now) == good
        assert token_problem(storage, secret, now) is None
        principal = principal_for_token(good)
        assert (principal.name, principal.role, principal.via, principal.locations, principal.token_id) == (
            "token:ci", Role.LAUNCHER, "token", frozenset({"etl"}), good.token_id)
        assert principal_for_token(make_token()[0]).locations is None

        wrong_secret = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
        for presented in (wrong_secret, "ryt_nothex00000_abc", "Bearer " + secret, "", f"ryt_{'0' * 12}_x"):
            assert verify_token(storage, presented, now) is None, presented
            assert token_problem(storage, presented, now) == "unknown", presented
        assert verify_token(storage, secret, now + 3600) is None  # expired at expires_at
        assert token_problem(storage, secret, now + 7200) == "expired"
        storage.revoke_api_token(good.token_id, now)
        assert verify_token(storage, secret, now) is None
        assert token_problem(storage, secret, now) == "revoked"

    # ---- the audit log ---------------------------------------------------------------------------
    def test_audit_entry_round_trips_every_field(self, storage):
        entry = make_entry("terminateRuns", "token:ci", "failed", via="token", role="launcher",
                           target="r1,r2", location="etl", code="NOT_FOUND", message="run r2 not found ✓",
                           remote_addr="2001:db8::1", timestamp=1_700_000_000.123456,
                           details={"runs": ["r1", "r2"], "count": 2, "nested": {"ok": False}})
        stored = storage.add_audit_entry(entry)
        assert stored.id is not None and entry.id is None
        assert stored == replace(entry, id=stored.id)
        assert storage.get_audit_entries() == [stored]
        bare = storage.add_audit_entry(make_entry("reloadLocation", "bob"))
        got = storage.get_audit_entries(limit=1)[0]
        assert got == bare and got.details == {} and got.role is None and got.result == AuditResult.OK

    def test_long_audit_values_are_kept_not_refused(self, storage):
        stored = storage.add_audit_entry(make_entry("a" * 300, "oidc:" + "x" * 400, location="l" * 300,
                                                    message="m" * 100_000, target="r" * 10_000))
        [got] = storage.get_audit_entries()
        assert got.id == stored.id and got.message == "m" * 100_000 and got.target == "r" * 10_000
        assert got.actor.startswith("oidc:xxx") and got.action.startswith("aaa") and got.location.startswith("lll")

    def test_audit_entries_newest_first_and_page_by_id(self, storage):
        ids = [storage.add_audit_entry(make_entry(message=f"m{i}", timestamp=1000.0)).id for i in range(23)]
        assert ids == sorted(ids) and len(set(ids)) == 23
        assert [e.id for e in storage.get_audit_entries(limit=100)] == ids[::-1]
        pages: list[int] = []
        before = None
        while True:
            page = storage.get_audit_entries(limit=5, before_id=before)
            if not page:
                break
            assert len(page) <= 5
            pages.extend(e.id for e in page)
            before = page[-1].id
        assert pages == ids[::-1]
        assert storage.get_audit_entries(limit=0) == []
        assert len(storage.get_audit_entries()) == 23  # the default limit (50) holds them all

    def test_audit_filters_are_exact_and_combine(self, storage):
        rows = [("alice", "launchRun", "etl", "ok", 100.0), ("Alice", "launchRun", "etl", "ok", 101.0),
                ("bob", "deleteRun", "etl", "refused", 102.0), ("alice", "deleteRun", "reports", "failed", 103.0),
                ("alice", "launchRun", None, "ok", 104.0)]
        for actor, action, location, result, ts in rows:
            storage.add_audit_entry(make_entry(action, actor, result, location=location, timestamp=ts))

        def times(**kwargs) -> list[float]:
            return [e.timestamp for e in storage.get_audit_entries(AuditFilter(**kwargs))]

        assert times() == [104.0, 103.0, 102.0, 101.0, 100.0]
        assert times(actor="alice") == [104.0, 103.0, 100.0]
        assert times(action="deleteRun") == [103.0, 102.0]
        assert times(location="etl") == [102.0, 101.0, 100.0]
        assert times(result="refused") == [102.0]
        assert times(result=AuditResult.FAILED) == [103.0]
        assert times(actor="alice", action="launchRun", location="etl") == [100.0]
        assert times(since=101.0, until=104.0) == [103.0, 102.0, 101.0]
        assert times(actor="nobody") == []
        assert [e.timestamp for e in storage.get_audit_entries(AuditFilter(actor="alice"), limit=1,
                                                               before_id=storage.get_audit_entries(
                                                                   AuditFilter(actor="alice"))[0].id)] == [103.0]

    def test_audit_retention_deletes_older_entries_and_ids_keep_growing(self, storage):
        old = [storage.add_audit_entry(make_entry(timestamp=100.0 + i)) for i in range(3)]
        new = storage.add_audit_entry(make_entry(timestamp=200.0))
        assert storage.delete_audit_entries(102.0) == 2
        assert [e.id for e in storage.get_audit_entries()] == [new.id, old[2].id]
        later = storage.add_audit_entry(make_entry(timestamp=300.0))
        assert later.id > new.id

    def test_concurrent_audit_writers_lose_nothing(self, storage, storage_factory):
        writers = [storage_factory() for _ in range(4)]
        errors: list[BaseException] = []

        def write(s, w: int) -> None:
            try:
                for i in range(15):
                    s.add_audit_entry(make_entry(actor=f"w{w}", details={"i": i}))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        entries = storage.get_audit_entries(limit=1000)
        assert len(entries) == 60 and len({e.id for e in entries}) == 60
        for w in range(4):  # each writer's entries in its own order
            assert [e.details["i"] for e in entries if e.actor == f"w{w}"] == list(range(15))[::-1]


# ---- migrating a database from before the tables (0003) ---------------------------------------------
#: the revision before ``api_tokens`` and ``audit_log`` (0004)
BEFORE_ACCESS_TABLES = "0003"


def write_revision_0003(engine) -> None:
    """Create the schema at 0003 and store, as a runyard of that revision did (raw SQL), a finished
    run ``old-run`` with one event."""
    from .old_schema import schema_with_old_run

    events = schema_with_old_run(engine, BEFORE_ACCESS_TABLES, "SUCCESS")
    with engine.begin() as conn:
        conn.execute(events.insert().values(run_id="old-run", event_type="RUN_SUCCESS", timestamp=101.0,
                                            step_key=None, level="INFO", message="old event", data=None))


def check_migrated_revision_0003(storage) -> None:
    """What :func:`write_revision_0003` stored reads back at head, the new tables and their indexes
    are there and work, and the revision downgrades and upgrades again cleanly."""
    import sqlalchemy as sa

    from ..storage.sql.migrations import downgrade, upgrade
    from ..storage.sql.schema import HEAD_REVISION

    assert storage.schema_revision() == HEAD_REVISION
    insp = sa.inspect(storage.engine)
    assert {"api_tokens", "audit_log"} <= set(insp.get_table_names())
    indexes = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("audit_log")}
    assert indexes.get("idx_audit_log_timestamp") == ["timestamp"], indexes
    for column in ("actor", "action", "location"):
        assert indexes.get(f"idx_audit_log_{column}") == [column, "id"], indexes
    assert storage.get_run("old-run").job_name == "etl"
    assert [e.message for e in storage.get_events("old-run")] == ["old event"]
    assert storage.list_api_tokens(include_revoked=True) == [] and storage.get_audit_entries() == []

    token, secret = make_token("after-migration", Role.ADMIN)
    storage.add_api_token(token)
    assert verify_token(storage, secret, time.time()) == token
    entry = storage.add_audit_entry(make_entry("token.create", target=token.token_id))
    assert storage.get_audit_entries() == [entry]

    with storage.engine.begin() as conn:
        downgrade(conn, BEFORE_ACCESS_TABLES)
    assert not {"api_tokens", "audit_log"} & set(sa.inspect(storage.engine).get_table_names())
    assert storage.schema_revision() == BEFORE_ACCESS_TABLES
    with storage.engine.begin() as conn:
        upgrade(conn)
    assert storage.schema_revision() == HEAD_REVISION and storage.list_api_tokens() == []
    assert storage.get_run("old-run") is not None


def check_copy_keeps_tokens_and_audit(source, target) -> None:
    """Moving an instance between SQL storages (:func:`runyard.storage.sql.transfer.copy_storage`)
    keeps its tokens (they still verify) and its audit log (same ids), and the target's next audit
    entry gets an id after the copied ones. ``source`` and ``target`` are ready and empty."""
    from ..storage.sql.transfer import copy_storage

    now = time.time()
    made = [make_token(f"t{i}", Role.LAUNCHER, locations=("etl",) if i else None, created_at=now - 10 + i)
            for i in range(3)]
    for token, _ in made:
        source.add_api_token(token)
    source.revoke_api_token(made[0][0].token_id, now)
    entries = [source.add_audit_entry(make_entry(f"a{i}", details={"i": i})) for i in range(5)]
    counts = copy_storage(source, target)
    assert counts["api_tokens"] == 3 and counts["audit_log"] == 5, counts
    assert target.list_api_tokens(include_revoked=True) == source.list_api_tokens(include_revoked=True)
    assert verify_token(target, made[0][1], now) is None and verify_token(target, made[2][1], now) == made[2][0]
    assert target.get_audit_entries() == source.get_audit_entries() == entries[::-1]
    assert target.add_audit_entry(make_entry("after")).id > entries[-1].id


def check_cli_migrates_to_access_tables(cli) -> None:
    """Through the CLI (the tests' ``cli`` fixture: a subprocess on an instance whose storage is at
    revision 0003, written by :func:`write_revision_0003`): ``runyard auth`` is refused until
    ``runyard instance migrate`` upgrades it; then tokens and the audit log work and the old run reads
    back."""
    from ..instance.instance import Instance
    from ..storage.sql.schema import HEAD_REVISION

    assert cli.json("instance", "info", "--json")["storage"]["schema_revision"] == BEFORE_ACCESS_TABLES
    refused = cli("auth", "token", "list")
    assert refused.returncode == 1 and "runyard instance migrate" in refused.stderr, refused.stderr
    out = cli.ok("instance", "migrate").stdout
    assert f"Migrated storage from revision {BEFORE_ACCESS_TABLES} to {HEAD_REVISION}." in out
    instance = Instance.open(str(cli.home))
    try:
        check_migrated_revision_0003(instance.storage)
    finally:
        instance.dispose()
    made = cli.json("auth", "token", "create", "ci", "--role", "viewer", "--json")
    assert [t["token_id"] for t in cli.json("auth", "token", "list", "--json")] == [made["token_id"]]
    assert [e["action"] for e in cli.json("auth", "audit", "--json")] == ["token.create"]
    assert cli.json("run", "show", "old-run", "--json")["status"] == "SUCCESS"
