"""Config errors never show a secret: a field typed ``SecretStr`` (or named like a secret, even when a
plugin typed it ``str``) is reported by its key path and the kind of value it got, never the value; a
password inside a URL is masked wherever a rejected value is shown; values of ordinary keys are still
shown, as before. Run config follows the same rule as the instance file.

Needs: real subprocesses and SQLite files under pytest's tmp_path.
"""

from __future__ import annotations

import pytest

from runyard.config_models import is_secret_name, mask_url_credentials

SECRET = "31415926535"

SECRETIVE_COORDINATOR = '''
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from runyard.coordinators.default import DefaultRunCoordinator


class Auth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = "me"
    token: SecretStr | None = None


class SecretiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_password: str | None = None            # typed plainly: its name marks it as a secret
    auth: Auth = Field(default_factory=Auth)
    headers: dict[str, str] = Field(default_factory=dict)
    endpoint: str = Field("https://example.invalid", pattern="^https://")
    retries: int = 1


class SecretiveCoordinator(DefaultRunCoordinator):
    config_model = SecretiveConfig
'''


@pytest.fixture
def secretive(home, tmp_path, write_file):
    write_file("extra/secretive.py", SECRETIVE_COORDINATOR)

    def configure(config: str) -> dict[str, str]:
        (home / "runyard.yaml").write_text("run_coordinator:\n  module: secretive\n  class: SecretiveCoordinator\n"
                                           f"  config: {config}\n")
        return {"PYTHONPATH": str(tmp_path / "extra")}

    return configure


def failing(cli, env, *fragments: str) -> str:
    proc = cli("instance", "info", env=env)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr
    return text


@pytest.mark.parametrize("config, where", [
    (f"{{auth: {{token: {SECRET}}}}}", "run_coordinator.config.auth.token"),
    (f"{{auth: {{token: [{SECRET}]}}}}", "run_coordinator.config.auth.token"),
    (f"{{api_password: {SECRET}}}", "run_coordinator.config.api_password"),
    (f"{{headers: {{x_api_key: {SECRET}}}}}", "run_coordinator.config.headers.x_api_key"),
])
def test_a_rejected_secret_is_named_never_shown(cli, secretive, config, where):
    text = failing(cli, secretive(config), f"{where}: Input should be a valid string (got a ")
    assert "value not shown" in text
    assert SECRET not in text


def test_ordinary_values_are_still_shown_with_url_passwords_masked(cli, secretive):
    text = failing(cli, secretive("{retries: lots}"), "run_coordinator.config.retries", "(got 'lots')")
    text = failing(cli, secretive(f"{{endpoint: 'postgresql://me:{SECRET}@db.internal/x'}}"),
                   "run_coordinator.config.endpoint: String should match pattern",
                   "(got 'postgresql://me:***@db.internal/x')")
    assert SECRET not in text


def test_a_valid_secret_config_loads(cli, secretive):
    env = secretive(f"{{auth: {{token: '{SECRET}'}}, api_password: '{SECRET}'}}")
    proc = cli.ok("instance", "info", "--json", env=env)
    assert SECRET not in proc.stdout + proc.stderr


SECRET_OP = '''
from runyard import Config, job, op


class Login(Config):
    password: str = ""


@op
def login(config: Login) -> None:
    pass


@job
def logs_in():
    login()
'''


def test_run_config_errors_do_not_show_secrets(cli, write_defs, write_file):
    defs = write_defs(SECRET_OP)
    config = write_file("run.yaml", f"ops:\n  login:\n    config:\n      password: {SECRET}\n")
    proc = cli("job", "execute", "-f", defs, "-j", "logs_in", "-c", config)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ops.login.config.password: Input should be a valid string (got a number" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert cli.json("run", "list", "--json") == []


def test_secret_names_and_url_masking():
    assert all(map(is_secret_name, ["password", "db_password", "PASSWORD", "token", "api_key", "apikey",
                                    "client_secret", "credentials", "private_key", "passwd"]))
    assert not any(map(is_secret_name, ["passwords_file_count", "tokenizer", "user", "host", "keys", "monkey"]))
    assert mask_url_credentials("a postgresql://u:p@h/db and mysql+pymysql://root:x@h:3306/d") == \
        "a postgresql://u:***@h/db and mysql+pymysql://root:***@h:3306/d"
    assert mask_url_credentials("https://h/path?x=1") == "https://h/path?x=1"
