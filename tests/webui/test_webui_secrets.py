"""The web UI never shows a secret: not the storage password inside its URL (status page, GraphQL,
process output), not the basic auth password (pages, ``runyard instance info``, a config error).

Needs the PostgreSQL server the storage_postgres tests need ($RUNYARD_TEST_PG_URL, default
postgresql://postgres@127.0.0.1:5432/postgres, trust auth: the password in the URL is accepted and
ignored by the server); fails, never skips, without it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from runyard_storage_postgres.testing import PostgresUnavailable, create_database, drop_database, require_server

STORAGE_PASSWORD = "s3cret-storage-Pw"
WEB_PASSWORD = "31415926535"


@pytest.fixture
def pg_db_with_password():
    try:
        admin = require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    url = create_database(admin, prefix="runyard_webui_secret")
    yield make_url(url).set(password=STORAGE_PASSWORD).render_as_string(hide_password=False)
    drop_database(url, admin)


def test_no_page_answer_or_output_shows_a_password(cli, start_webui, instance_file, pg_db_with_password):
    instance_file(f"storage:\n  postgres:\n    url: '{pg_db_with_password}'\n"
                  "webui:\n  auth: {username: admin, password: {env: WEB_PW}}\n")
    env = {"WEB_PW": WEB_PASSWORD}
    cli.ok("instance", "migrate", env=env)
    for args in (("instance", "info"), ("instance", "info", "--json")):
        proc = cli.ok(*args, env=env)
        assert STORAGE_PASSWORD not in proc.stdout + proc.stderr
        assert WEB_PASSWORD not in proc.stdout + proc.stderr
    ui = start_webui(env=env)
    ui.auth = ("admin", WEB_PASSWORD)
    shown = [ui.get(path)[1] for path in ("/", "/runs", "/status", "/jobs", "/automation")]
    shown.append(str(ui.gql("{ instance { storage runCoordinator runLauncher } }")))
    assert "***@" in shown[2]  # the status page shows the storage URL, masked
    for text in shown + ui.lines:
        assert STORAGE_PASSWORD not in text and WEB_PASSWORD not in text


def test_a_basic_auth_password_of_the_wrong_type_is_not_shown(cli, instance_file):
    instance_file(f"webui:\n  auth: {{username: admin, password: {WEB_PASSWORD}}}\n")
    for args in (("instance", "info"), ("webui", "--port", "0")):
        proc = cli(*args, timeout=30)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "webui.auth.password: Input should be a valid string (got a number" in proc.stderr
        assert WEB_PASSWORD not in proc.stdout + proc.stderr
