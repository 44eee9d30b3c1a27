"""Bad instance settings: every numeric setting of every section and component refuses ``.inf`` and
NaN (found by walking the models, so a new setting is covered too); a class selection that is not a
class, a module that cannot be imported, 100,000 unknown keys and malformed database URLs given
through ``{env: ...}`` are each one clear error naming the file, line and key.

Needs: nothing beyond Python (SQLite files under tmp_path; real subprocesses for the CLI cases).
"""

from __future__ import annotations

import time
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from runyard import Instance
from runyard.config_models import validate_model
from runyard.errors import ConfigError
from runyard.instance.settings import InstanceSettings
from runyard.instance.yaml_source import format_path

NON_FINITE = [".inf", "-.inf", ".nan", "inf", "'NaN'", "1e999"]

# What a component's config needs besides the key under test, so that key is what fails.
MINIMAL_CONFIG: dict[tuple[str, str], dict[str, Any]] = {
    ("storage", "postgres"): {"url": "postgresql://u@127.0.0.1/db"},
    ("storage", "mysql"): {"url": "mysql://u@127.0.0.1/db"},
}


def _members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def float_fields(model: type[BaseModel], path: tuple = ()) -> list[tuple]:
    """Key paths of every float (or float-or-None) setting of ``model``, nested models included."""
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        for member in _members(field.annotation):
            if member is float:
                out.append(path + (key,))
            elif isinstance(member, type) and issubclass(member, BaseModel):
                out.extend(float_fields(member, path + (key,)))
    return out


def all_config_models() -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    from runyard.instance.sections import get_section_registry
    from runyard.plugins import COMPONENT_KINDS, get_registry

    models = [("instance", InstanceSettings, {})]
    for reg in get_section_registry(frozenset(InstanceSettings.model_fields)).registrations():
        models.append((f"section {reg.name}", reg.model, {}))
    for kind in COMPONENT_KINDS:
        for reg in get_registry(kind).registrations():
            model = getattr(reg.cls, "config_model", None)
            if model is not None:
                models.append((f"{kind} {reg.name}", model, MINIMAL_CONFIG.get((kind, reg.name), {})))
    return models


CASES = [(label, model, base, path) for label, model, base in all_config_models() for path in float_fields(model)]


def test_the_walk_finds_settings_of_every_kind():
    labels = {label for label, *_ in CASES}
    assert {"instance", "section webui", "storage mysql", "storage postgres", "run_launcher process",
            "run_coordinator queued"} <= labels, labels
    paths = {format_path(path) for label, _, _, path in CASES if label == "instance"}
    assert {"daemon.lease_seconds", "daemon.schedule_interval_seconds", "daemon.sensor_interval_seconds",
            "daemon.heartbeat_interval_seconds", "retention.runs_days"} <= paths


def nested(path: tuple, value: Any, base: dict[str, Any]) -> dict[str, Any]:
    data = dict(base)
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("label, model, base, path", CASES,
                         ids=[f"{label}:{format_path(path)}" for label, _, _, path in CASES])
def test_every_float_setting_refuses_inf_and_nan(label, model, base, path):
    import yaml

    for text in NON_FINITE:
        value = yaml.safe_load(text)  # as the instance file would give it: a float or a string
        with pytest.raises(ConfigError) as info:
            validate_model(model, nested(path, value, base), source="runyard.yaml", path=("x",))
        message = str(info.value)
        assert format_path(("x", *path)) in message, message
        assert "finite" in message, message


def test_inf_through_the_instance_file_and_the_cli(home, cli):
    (home / "runyard.yaml").write_text("daemon:\n  lease_seconds: .inf\n")
    proc = cli("run", "list")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{home / 'runyard.yaml'}, line 2: daemon.lease_seconds" in proc.stderr and "finite" in proc.stderr
    for key in ("schedule_interval_seconds", "sensor_interval_seconds", "heartbeat_interval_seconds"):
        with pytest.raises(ConfigError, match=f"daemon.{key}"):
            Instance.from_yaml(str(home), f"daemon:\n  {key}: .inf\n")
        with pytest.raises(ConfigError, match=f"daemon.{key}"):
            Instance.from_yaml(str(home), f"daemon:\n  {key}: 1e300\n")  # finite, but no timer takes it


def test_inf_in_executor_run_config_is_refused_but_op_config_decides_for_itself():
    from runyard.definitions.config import ResolvedRunConfig, validate_executor
    from runyard.errors import RunConfigError

    with pytest.raises(RunConfigError, match="finite"):
        validate_executor(ResolvedRunConfig(
            executor_name="multiprocess", executor_config={"max_concurrent": 2, "grace_period_seconds": float("inf")}))


@pytest.mark.parametrize("selection, fragment", [
    ("module: os\n  class: system", "os.system is a function, not a class"),
    ("module: os\n  class: path", "os.path is a module, not a class"),
    ("module: os\n  class: sep", "os.sep is a str, not a class"),
    ("module: ''\n  class: X", "module"),
    ("module: .relative\n  class: X", "cannot load class X from module .relative"),
    ("module: [1, 2]\n  class: X", "module must be a string"),
    ("module: os\n  class: {a: 1}", "class must be a string"),
    ("module: runyard_no_such_module\n  class: X", "cannot load class X from module runyard_no_such_module"),
    ("module: os\n  class: NoSuchClass", "it has no such attribute"),
])
@pytest.mark.parametrize("kind", ["storage", "run_launcher", "run_coordinator"])
def test_class_selection_that_is_not_a_component_class(home, kind, selection, fragment):
    with pytest.raises(ConfigError) as info:
        Instance.from_yaml(str(home), f"{kind}:\n  {selection}\n")
    key = "module" if fragment.startswith("module") else "class"
    assert fragment in str(info.value) and f"{kind}.{key}" in str(info.value), str(info.value)
    assert f"line {2 if key == 'module' else 3}" in str(info.value), str(info.value)


def test_class_selection_from_a_module_that_raises_on_import(home, tmp_path, monkeypatch):
    (tmp_path / "broken_component_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        Instance.from_yaml(str(home), "run_launcher:\n  module: broken_component_mod\n  class: X\n")
    assert "boom at import" in str(info.value) and "line 3: run_launcher.class" in str(info.value)


@pytest.mark.parametrize("where", ["top", "daemon", "webui", "storage"])
def test_100000_unknown_keys_are_reported_quickly_and_briefly(home, where):
    keys = "".join(f"{'    ' if where == 'storage' else '  ' if where != 'top' else ''}k{i}: 1\n"
                   for i in range(100_000))
    text = {"top": keys, "daemon": "daemon:\n" + keys, "webui": "webui:\n" + keys,
            "storage": "storage:\n  sqlite:\n" + keys}[where]
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        inst = Instance.from_yaml(str(home), text)
        inst.build_component("storage")
    assert time.monotonic() - started < 60  # 5,000 keys took 150 s when each error re-listed all of them
    message = str(info.value)
    assert len(message) < 5000 and message.count("\n") < 30, message[:5000]
    assert "k0" in message and "unknown key" in message
    if where != "top":
        assert "100,000 problems" in message or "99,980 more" in message, message[-500:]


@pytest.mark.parametrize("kind, url, fragment", [
    ("postgres", "postgresql://u:pw@h:notaport/db", "cannot be parsed"),
    ("postgres", "not a url", "url must look like"),
    ("postgres", "mysql://u:pw@h/db", "scheme"),
    ("mysql", "mysql://u:pw@h:99999999999/db", "cannot be parsed"),
    ("mysql", "mysql://u:p@ss:w@rd@host/db", "cannot be parsed"),
])
def test_malformed_database_url_from_env_names_the_variable_and_key(home, monkeypatch, kind, url, fragment):
    monkeypatch.setenv("RUNYARD_TEST_DB_URL", url)
    inst = Instance.from_yaml(str(home), f"storage:\n  {kind}:\n    url: {{env: RUNYARD_TEST_DB_URL}}\n")
    with pytest.raises(ConfigError) as info:
        inst.build_component("storage")
    message = str(info.value)
    assert "RUNYARD_TEST_DB_URL" in message and f"storage.{kind}" in message and "line 3" in message, message
    assert fragment in message, message
    assert "pw" not in message.replace("password", "") and "p@ss" not in message  # the secret is not echoed


def test_malformed_port_from_env_names_the_variable(home, monkeypatch):
    monkeypatch.setenv("RUNYARD_TEST_DB_PORT", "fivefourthreetwo")
    inst = Instance.from_yaml(str(home), "storage:\n  postgres:\n    host: h\n    database: d\n"
                                         "    port: {env: RUNYARD_TEST_DB_PORT}\n")
    with pytest.raises(ConfigError) as info:
        inst.build_component("storage")
    message = str(info.value)
    assert "storage.postgres.port" in message and "RUNYARD_TEST_DB_PORT" in message and "line 5" in message
