"""The instance file (``$RUNYARD_HOME/runyard.yaml``): defaults, errors that name file, line and key
path, and ``{env: NAME}`` references. Each error is one message on stderr and exit code 2.

Needs: real subprocesses and SQLite files under pytest's tmp_path.
"""

from __future__ import annotations

import pytest

from runyard import Instance
from runyard.errors import ConfigError


def assert_one_clear_error(proc, *fragments: str, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("Error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return err


def test_missing_instance_file_is_a_working_sqlite_instance(cli, home):
    info = cli.json("instance", "info", "--json")
    assert info["home"] == str(home)
    assert info["instance_file"] == str(home / "runyard.yaml")
    assert info["instance_file_exists"] is False
    assert info["storage"]["storage"] == "sqlite"
    assert info["storage"]["path"] == str(home / "runyard.db")
    assert (info["run_coordinator"], info["run_launcher"]) == ("default", "process")
    assert cli.json("run", "list", "--json") == []
    assert (home / "runyard.db").is_file()


def test_empty_instance_file_is_a_working_sqlite_instance(cli, home):
    (home / "runyard.yaml").write_text("# nothing configured yet\n")
    info = cli.json("instance", "info", "--json")
    assert info["instance_file"] == str(home / "runyard.yaml")
    assert info["instance_file_exists"] is True
    assert info["storage"]["storage"] == "sqlite"
    assert cli.json("run", "list", "--json") == []


def test_storage_path_is_relative_to_home(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite:\n    path: data/runs.db\n")
    assert cli.json("instance", "info", "--json")["storage"]["path"] == str(home / "data" / "runs.db")


def test_malformed_yaml_names_file_and_line(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite: {}\nrun_launcher:\n  process: {warm: [1, 2\n")
    assert_one_clear_error(cli("run", "list"), str(home / "runyard.yaml"), "line 5", "invalid YAML")


def test_bad_indentation_names_its_line(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite:\n    path: a.db\n   busy_timeout_ms: 5\n")
    err = assert_one_clear_error(cli("instance", "info"), str(home / "runyard.yaml"), "invalid YAML")
    assert "line 4" in err


def test_wrong_typed_value_names_the_key_path(cli, home):
    (home / "runyard.yaml").write_text('storage:\n  sqlite:\n    busy_timeout_ms: "abc"\n')
    assert_one_clear_error(cli("run", "list"), str(home / "runyard.yaml"), "line 3",
                           "storage.sqlite.busy_timeout_ms", "valid integer", "'abc'")


def test_unknown_key_inside_a_component_config(cli, home):
    (home / "runyard.yaml").write_text("run_launcher:\n  process:\n    grace_period: 3\n")
    assert_one_clear_error(cli("instance", "info"), "run_launcher.process.grace_period: unknown key")


def test_unknown_top_level_key(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite: {}\nlaunchers:\n  process: {}\n")
    assert_one_clear_error(cli("run", "list"), str(home / "runyard.yaml"), "line 3", "launchers: unknown key")


def test_top_level_must_be_a_mapping(cli, home):
    (home / "runyard.yaml").write_text("- storage\n- sqlite\n")
    assert_one_clear_error(cli("run", "list"), "must be a mapping")


def test_two_components_of_one_kind(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite: {}\n  postgres: {}\n")
    assert_one_clear_error(cli("run", "list"), "storage: choose exactly one storage (got sqlite, postgres)")


def test_env_reference_is_resolved(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite:\n    path: {env: RUNS_DB}\n")
    info = cli.json("instance", "info", "--json", env={"RUNS_DB": "from-env.db"})
    assert info["storage"]["path"] == str(home / "from-env.db")


def test_env_reference_default_applies_when_unset(cli, home):
    (home / "runyard.yaml").write_text(
        "storage:\n  sqlite:\n    path: {env: RUNS_DB, default: fallback.db}\n"
        "    busy_timeout_ms: {env: BUSY_MS, default: 1234}\n")
    info = cli.json("instance", "info", "--json")
    assert info["storage"]["path"] == str(home / "fallback.db")
    info = cli.json("instance", "info", "--json", env={"RUNS_DB": "set.db"})
    assert info["storage"]["path"] == str(home / "set.db")


def test_env_value_is_validated_like_a_literal(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite:\n    busy_timeout_ms: {env: BUSY_MS}\n")
    assert cli("run", "list", env={"BUSY_MS": "250"}).returncode == 0
    assert_one_clear_error(cli("run", "list", env={"BUSY_MS": "soon"}), "storage.sqlite.busy_timeout_ms")


def test_unset_env_variable_is_an_error_naming_it(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite:\n    path: {env: RUNYARD_TEST_UNSET_DB}\n")
    assert_one_clear_error(cli("run", "list"), str(home / "runyard.yaml"), "line 3", "storage.sqlite.path",
                           "environment variable RUNYARD_TEST_UNSET_DB is not set")


def test_instance_file_can_live_elsewhere(cli, home, tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("storage:\n  sqlite:\n    path: elsewhere.db\n")
    info = cli.json("instance", "info", "--json", env={"RUNYARD_INSTANCE_FILE": str(other)})
    assert info["instance_file"] == str(other)
    assert info["storage"]["path"] == str(home / "elsewhere.db")


def test_explicit_instance_file_that_does_not_exist(cli, tmp_path):
    missing = tmp_path / "missing.yaml"
    assert_one_clear_error(cli("run", "list", env={"RUNYARD_INSTANCE_FILE": str(missing)}),
                           str(missing), "file not found")


def test_home_option_overrides_the_environment(cli, tmp_path):
    other = tmp_path / "other-home"
    info = cli.json("--home", str(other), "instance", "info", "--json")
    assert info["home"] == str(other)
    assert info["storage"]["path"] == str(other / "runyard.db")


def test_in_process_api_reports_the_same_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        Instance.from_yaml(str(tmp_path), "run_monitoring:\n  poll_interval_seconds: -1\n")
    assert "run_monitoring.poll_interval_seconds" in str(err.value)
    assert err.value.line == 2
    assert err.value.exit_code == 2


def test_instance_migrate_is_idempotent(cli, home):
    first = cli.ok("instance", "migrate").stdout
    assert "Migrated storage from revision (empty) to" in first
    second = cli.ok("instance", "migrate").stdout
    assert "nothing to do" in second
    info = cli.json("instance", "info", "--json")
    assert info["storage"]["schema_revision"] == first.strip().rstrip(".").split()[-1]
    assert info["runs"] == 0


# ---- the instance as a container worker gets it (issue 11) ------------------------------------------------

def test_a_worker_gets_the_instance_text_it_needs_with_env_references_unresolved(tmp_path, monkeypatch):
    import yaml

    from runyard.instance.instance import INSTANCE_SOURCE_ENV, INSTANCE_YAML_ENV

    home = tmp_path / "home"
    home.mkdir()
    (home / "runyard.yaml").write_text(
        "storage:\n  sqlite:\n    busy_timeout_ms: {env: BUSY_MS, default: 5000}\n"
        "run_launcher:\n  process:\n    env: {SECRET: {env: LAUNCHER_ONLY}}\n"
        "run_monitoring:\n  poll_interval_seconds: 2\n")
    monkeypatch.setenv("BUSY_MS", "7000")
    instance = Instance.open(home=str(home))
    text = instance.worker_config_text()
    assert yaml.safe_load(text) == {"storage": {"sqlite": {"busy_timeout_ms": {"env": "BUSY_MS", "default": 5000}}},
                                    "run_monitoring": {"poll_interval_seconds": 2}}
    assert "7000" not in text and "LAUNCHER_ONLY" not in text
    assert instance.worker_env_names() == {"BUSY_MS"}
    instance.dispose()
    # a worker that cannot see the file opens the instance from that text, resolving {env:} itself
    monkeypatch.delenv("RUNYARD_INSTANCE_FILE", raising=False)
    monkeypatch.setenv(INSTANCE_YAML_ENV, text)
    monkeypatch.setenv(INSTANCE_SOURCE_ENV, "/etc/runyard/runyard.yaml (as handed to the container)")
    worker = Instance.open(home=str(tmp_path / "elsewhere"))
    assert worker.settings.run_monitoring.poll_interval_seconds == 2
    assert worker.storage.config.busy_timeout_ms == 7000
    worker.dispose()
    monkeypatch.setenv(INSTANCE_YAML_ENV, "storage: [")
    with pytest.raises(ConfigError, match="as handed to the container"):
        Instance.open(home=str(tmp_path / "elsewhere"))
