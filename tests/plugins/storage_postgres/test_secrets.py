"""The Postgres storage's password never leaves the process: not when it is given as a bare number
(unquoted YAML), as a wrong type (a list, a mapping), or inside the URL; not in a config error, not in
``runyard instance info`` (text or ``--json``), not in a failing ``runyard run list``.

Needs: the private PostgreSQL server with password auth from conftest.py (initdb and pg_ctl), real
``runyard`` subprocesses.
"""

from __future__ import annotations

import pytest

SECRET_NUMBER = "31415926535"
SECRET_WORD = "s3cret-Pw"
COMMANDS = (("instance", "info"), ("instance", "info", "--json"), ("run", "list"))


def outputs(cli, *args, env=None):
    proc = cli(*args, env=env)
    return proc, proc.stdout + proc.stderr


def assert_not_shown(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} shown in:\n{text}"


@pytest.mark.parametrize("value, got", [
    (SECRET_NUMBER, "got a number: quote it to make it a string; value not shown"),
    (f"[{SECRET_NUMBER}, {SECRET_WORD}]", "got a list; value not shown"),
    (f"{{a: {SECRET_NUMBER}, b: {SECRET_WORD}}}", "got a mapping; value not shown"),
])
def test_a_password_of_the_wrong_type_is_a_config_error_that_does_not_show_it(cli, home, value, got):
    (home / "runyard.yaml").write_text(
        f"storage:\n  postgres:\n    host: 127.0.0.1\n    database: postgres\n    password: {value}\n")
    for args in COMMANDS:
        proc, text = outputs(cli, *args)
        assert proc.returncode == 2, text
        assert proc.stderr.startswith(f"Error: {home / 'runyard.yaml'}, line 5: storage.postgres.password: "
                                      "Input should be a valid string"), proc.stderr
        assert got in proc.stderr and "Traceback" not in proc.stderr
        assert_not_shown(text, SECRET_NUMBER, SECRET_WORD)


def test_a_url_of_the_wrong_type_or_unparseable_does_not_show_it(cli, home):
    for url, fragment in ((f"['postgresql://u:{SECRET_WORD}@127.0.0.1/db']", "storage.postgres.url: Input should "
                           "be a valid string (got a list; value not shown)"),
                          (f"postgresql://u:{SECRET_WORD}@127.0.0.1:port/db", "the URL cannot be parsed")):
        (home / "runyard.yaml").write_text(f"storage:\n  postgres:\n    url: {url}\n")
        for args in COMMANDS:
            proc, text = outputs(cli, *args)
            assert proc.returncode == 2, text
            assert fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
            assert_not_shown(text, SECRET_WORD, SECRET_NUMBER)


def test_the_password_inside_a_url_is_masked_when_it_works(cli, home, private_server):
    url = private_server.url()
    assert private_server.password in url
    (home / "runyard.yaml").write_text(f"storage:\n  postgres:\n    url: '{url}'\n")
    for args in COMMANDS:
        proc, text = outputs(cli, *args)
        assert proc.returncode == 0, text
        assert_not_shown(text, private_server.password)
    info = cli.json("instance", "info", "--json")
    assert info["storage"]["url"] == f"postgresql://{private_server.user}:***@127.0.0.1:{private_server.port}/postgres"


@pytest.mark.parametrize("form", ["url", "keys"])
def test_a_wrong_password_fails_without_showing_it(cli, home, private_server, form):
    if form == "url":
        config = f"url: '{private_server.url(password=SECRET_WORD)}'"
    else:
        config = (f"host: 127.0.0.1\n    port: {private_server.port}\n    user: {private_server.user}\n"
                  f"    database: postgres\n    password: '{SECRET_WORD}'")
    (home / "runyard.yaml").write_text(f"storage:\n  postgres:\n    {config}\n")
    for args in COMMANDS:
        proc, text = outputs(cli, *args)
        assert proc.returncode != 0, text
        assert "password authentication failed" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert f"postgresql://{private_server.user}:***@" in proc.stderr
        assert_not_shown(text, SECRET_WORD, private_server.password)


def test_a_numeric_password_written_as_an_env_reference_works(cli, home, private_server):
    """The way out the error suggests besides quoting: the file then holds no secret at all."""
    (home / "runyard.yaml").write_text(
        f"storage:\n  postgres:\n    host: 127.0.0.1\n    port: {private_server.port}\n"
        f"    user: {private_server.user}\n    database: postgres\n    password: {{env: RY_SECRET_PW}}\n")
    proc, text = outputs(cli, "instance", "info", env={"RY_SECRET_PW": private_server.password})
    assert proc.returncode == 0, text
    assert_not_shown(text, private_server.password)


def test_a_config_given_as_a_bare_string_is_not_shown(cli, home):
    """``postgres: <the password>`` (a scalar where the config mapping belongs) could be the secret."""
    (home / "runyard.yaml").write_text(f"storage:\n  postgres: {SECRET_WORD}\n")
    proc, text = outputs(cli, "run", "list")
    assert proc.returncode == 2, text
    assert "storage.postgres: Input should be a valid dictionary" in proc.stderr
    assert "(got a string; value not shown)" in proc.stderr
    assert_not_shown(text, SECRET_WORD)
