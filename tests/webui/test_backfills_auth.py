"""Backfills and who may see and touch them (docs/backfills.md, docs/auth.md), against a real
``runyard webui`` serving two code locations behind basic-auth users: a principal limited to code
locations sees only their backfills (GraphQL list and lookup, the pages) and may not cancel or retry
the others (NOT_FOUND, as if they did not exist); a viewer may read but not cancel; the audit log
names the backfill. Backfills are stored directly (the locations here have no partitioned job).

Needs: nothing beyond the dev venv.
"""

from __future__ import annotations

import pytest
from auth_support import Client, start_secured, with_storage

from runyard.testing.backfills import make_backfill


@pytest.fixture
def ui(start_webui, instance_file, tmp_path):
    return start_secured(start_webui, instance_file, tmp_path)


def test_backfills_are_scoped_to_code_locations(ui, home):
    mine = make_backfill(["a"], location="defs_webui", job_name="hello")
    theirs = make_backfill(["b"], location="other", job_name="other_job")
    with_storage(home, lambda s: (s.add_backfill(mine), s.add_backfill(theirs)))
    admin, scoped, viewer = Client.user(ui, "ad"), Client.user(ui, "sc"), Client.user(ui, "vi")
    listing = "{ backfills { backfills { backfillId location } } }"
    assert {b["location"] for b in admin.gql(listing)["backfills"]["backfills"]} == {"defs_webui", "other"}
    assert [b["backfillId"] for b in scoped.gql(listing)["backfills"]["backfills"]] == [theirs.backfill_id]
    lookup = 'query($id: ID!) { backfill(backfillId: $id) { backfillId progress { total } } }'
    assert scoped.gql(lookup, {"id": mine.backfill_id})["backfill"] is None
    assert scoped.gql(lookup, {"id": theirs.backfill_id})["backfill"]["progress"]["total"] == 1
    assert scoped.get(f"/backfills/{mine.backfill_id}") == 404
    assert scoped.get(f"/backfills/{theirs.backfill_id}") == 200 and scoped.get("/backfills") == 200

    cancel = 'mutation($id: ID!) { cancelBackfill(backfillId: $id) { ok code message backfill { status } } }'
    refused = scoped.gql(cancel, {"id": mine.backfill_id})["cancelBackfill"]
    assert refused["ok"] is False and refused["code"] == "NOT_FOUND", refused
    assert viewer.gql(cancel, {"id": mine.backfill_id})["cancelBackfill"]["code"] == "FORBIDDEN"
    done = scoped.gql(cancel, {"id": theirs.backfill_id})["cancelBackfill"]
    assert done == {"ok": True, "code": None, "message": None, "backfill": {"status": "CANCELED"}}
    assert with_storage(home, lambda s: str(s.get_backfill(mine.backfill_id).status)) == "REQUESTED"
    retry = 'mutation($id: ID!) { retryBackfill(backfillId: $id) { ok code message } }'
    assert scoped.gql(retry, {"id": mine.backfill_id})["retryBackfill"]["code"] == "NOT_FOUND"

    entries = admin.gql('{ auditLog(action: "cancelBackfill") { entries { target result actor } } }')
    rows = entries["auditLog"]["entries"]
    assert {(r["target"], r["actor"]) for r in rows} >= {(theirs.backfill_id, "sc"), (mine.backfill_id, "vi")}
