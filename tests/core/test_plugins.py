"""Plugins: built-ins and the SQLite plugin register through the same hooks, unknown names say what
to install, unpackaged classes are selected by module and class, entry points can be blocked, and
every hook spec is documented for plugin authors.

Needs: runyard and runyard-storage-sqlite installed (the tox env installs both); real subprocesses.
"""

from __future__ import annotations

import re
from pathlib import Path

from runyard.hookspecs import documented_hooks
from runyard.plugins import get_registry, list_plugins

REPO = Path(__file__).resolve().parents[2]


def test_plugins_json_lists_builtins_and_the_sqlite_entry_point(cli):
    plugins = {p["name"]: p for p in cli.json("plugins", "--json")}
    builtins = plugins["runyard.builtins"]
    assert builtins["distribution"] == "runyard"
    assert {(c["kind"], c["name"]) for c in builtins["components"]} == {
        ("run_coordinator", "default"), ("run_coordinator", "queued"), ("run_launcher", "process"),
        ("executor", "in_process")}
    assert set(builtins["hooks"]) >= {"runyard_register_run_coordinator", "runyard_register_run_launcher",
                                      "runyard_register_executor"}
    sqlite = plugins["sqlite"]
    assert sqlite["distribution"] == "runyard-storage-sqlite"
    assert sqlite["version"]
    assert sqlite["components"] == [{"kind": "storage", "name": "sqlite"}]
    assert sqlite["hooks"] == ["runyard_register_storage"]


def test_plugins_text_output(cli):
    out = cli.ok("plugins").stdout
    assert "runyard.builtins" in out and "runyard-storage-sqlite" in out
    assert re.search(r"storage\s+sqlite", out)


def test_registries_know_which_plugin_provided_each_component():
    storage = {r.name: r for r in get_registry("storage").registrations()}
    assert storage["sqlite"].plugin == "sqlite"
    assert storage["sqlite"].distribution == "runyard-storage-sqlite"
    launcher = {r.name: r for r in get_registry("run_launcher").registrations()}
    assert launcher["process"].plugin == "runyard.builtins"
    assert [p["name"] for p in list_plugins()][0] == "runyard.builtins"


def test_unknown_component_lists_installed_choices_and_the_distribution(cli, home, uninstalled_component):
    kind, name, dist = uninstalled_component
    (home / "runyard.yaml").write_text(f"{kind}:\n  {name}: {{}}\n")
    proc = cli("instance", "info")  # builds every component
    assert proc.returncode == 2
    err = proc.stderr
    assert str(home / "runyard.yaml") in err
    label = kind.replace("_", " ")
    assert f"unknown {label} '{name}'" in err
    assert re.search(rf"Installed {label}s: [^.]*\b{'sqlite' if kind == 'storage' else 'process'}\b", err)
    assert dist in err
    assert "Traceback" not in err


def test_unknown_third_party_name_explains_how_to_select(cli, home):
    (home / "runyard.yaml").write_text("run_launcher:\n  nomad: {}\n")
    proc = cli("instance", "info")
    assert proc.returncode == 2
    assert re.search(r"unknown run launcher 'nomad'\. Installed run launchers: [^.]*\bprocess\b", proc.stderr)
    assert "{module: ..., class: ..., config: {...}}" in proc.stderr


def test_disabling_the_sqlite_plugin_makes_sqlite_unknown(cli):
    plugins = [p["name"] for p in cli.json("plugins", "--json", env={"RUNYARD_DISABLE_PLUGINS": "sqlite"})]
    assert "sqlite" not in plugins and plugins[0] == "runyard.builtins"
    proc = cli("run", "list", env={"RUNYARD_DISABLE_PLUGINS": "sqlite"})
    assert proc.returncode == 2
    installed = re.search(r"unknown storage 'sqlite'\. Installed storages: ([^.]*)\.", proc.stderr).group(1)
    assert "sqlite" not in installed
    assert "runyard-storage-sqlite" in proc.stderr


MARKING_COORDINATOR = '''
import json
import os

from pydantic import BaseModel, ConfigDict

from runyard.coordinators.base import RunCoordinator


class MarkingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marker_dir: str
    label: str = "unlabelled"


class MarkingCoordinator(RunCoordinator):
    """Writes a marker for each submitted run, then launches it at once."""

    config_model = MarkingConfig

    def submit_run(self, context):
        run = context.run
        with open(os.path.join(self.config.marker_dir, run.run_id + ".json"), "w") as f:
            json.dump({"label": self.config.label, "status": str(run.status), "pid": os.getpid()}, f)
        return context.instance.launch_run(run)
'''

def test_unpackaged_class_is_selected_by_module_and_class(cli, home, tmp_path, write_file, tiny_defs):
    write_file("extra/my_coordinators.py", MARKING_COORDINATOR)
    markers = tmp_path / "markers"
    markers.mkdir()
    (home / "runyard.yaml").write_text(
        "run_coordinator:\n"
        "  module: my_coordinators\n"
        "  class: MarkingCoordinator\n"
        f"  config: {{marker_dir: {markers}, label: {{env: MARK_LABEL}}}}\n")
    defs = tiny_defs
    env = {"PYTHONPATH": str(tmp_path / "extra"), "MARK_LABEL": "from-env"}
    info = cli.json("instance", "info", "--json", env=env)
    assert info["run_coordinator"] == "my_coordinators.MarkingCoordinator"
    assert info["run_launcher"] == "process"
    proc = cli.ok("job", "launch", "-f", defs, "-j", "tiny", "--wait", env=env)
    run_id = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
    marker = (markers / f"{run_id}.json").read_text()
    assert '"label": "from-env"' in marker and '"status": "NOT_STARTED"' in marker
    assert cli.json("run", "show", run_id, "--json", env=env)["status"] == "SUCCESS"


def test_unpackaged_class_config_errors_name_the_key_path(cli, home, tmp_path, write_file):
    write_file("extra/my_coordinators.py", MARKING_COORDINATOR)
    (home / "runyard.yaml").write_text(
        "run_coordinator:\n  module: my_coordinators\n  class: MarkingCoordinator\n  config: {label: x}\n")
    proc = cli("instance", "info", env={"PYTHONPATH": str(tmp_path / "extra")})
    assert proc.returncode == 2
    assert "run_coordinator.config.marker_dir: required key is missing" in proc.stderr


def test_unpackaged_class_that_cannot_be_imported(cli, home):
    (home / "runyard.yaml").write_text("run_launcher:\n  module: no_such_module\n  class: Launcher\n")
    proc = cli("instance", "info")
    assert proc.returncode == 2
    assert "cannot load class Launcher from module no_such_module" in proc.stderr
    assert "run_launcher.class" in proc.stderr


def test_every_hook_spec_has_a_docstring():
    for name, spec in documented_hooks().items():
        assert spec.__doc__ and len(spec.__doc__.strip()) > 80, f"{name} needs a real docstring"
