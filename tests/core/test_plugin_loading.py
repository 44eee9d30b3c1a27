"""Plugin loading never fails silently, and one plugin's failure stays its own: a misspelled hook or a
wrong hook argument is one clear error naming plugin, distribution and hook; a component hook that
raises leaves that plugin listed as broken while everything that does not need it keeps working; a
class selected by module and class is checked against its kind when the instance loads; misspelled
component names get a "did you mean"; registries never change the classes they hold.

Each plugin here is a real distribution: a module plus a ``.dist-info`` (METADATA and
entry_points.txt) in a directory the CLI subprocess gets on ``PYTHONPATH``, found by
``importlib.metadata`` exactly like an installed one.

Needs: real subprocesses and SQLite files under pytest's tmp_path.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from runyard.component import ComponentContext, build_component


def one_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("Error: ") and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return err


# ---- hookimpl marker -----------------------------------------------------------------------------

def test_hookimpl_is_importable_from_runyard_without_loading_anything():
    code = ("import sys, runyard\n"
            "assert 'pluggy' not in sys.modules and 'runyard.plugins' not in sys.modules\n"
            "from runyard import hookimpl\n"
            "import runyard.hookspecs, runyard.plugins\n"
            "assert hookimpl is runyard.hookspecs.hookimpl is runyard.plugins.hookimpl\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_plugin_marked_with_runyard_hookimpl_registers_its_component(cli, site):
    env = site("alias", """
        from runyard import hookimpl

        @hookimpl
        def runyard_register_run_launcher(registry):
            from runyard.launchers.process import ProcessRunLauncher
            registry.add("local", ProcessRunLauncher)
    """)
    plugins = {p["name"]: p for p in cli.json("plugins", "--json", env=env)}
    assert plugins["alias"]["distribution"] == "runyard-test-alias"
    assert plugins["alias"]["version"] == "1.2.3"
    assert plugins["alias"]["components"] == [{"kind": "run_launcher", "name": "local"}]
    assert plugins["alias"]["broken"] == []


# ---- hooks pluggy cannot call ----------------------------------------------------------------------

def test_a_misspelled_hook_is_an_error_naming_plugin_hook_and_the_right_name(cli, site):
    env = site("typo", """
        from runyard import hookimpl

        @hookimpl
        def runyard_register_run_launchers(registry):
            pass
    """)
    for args in (("run", "list"), ("plugins",), ("plugins", "--json")):
        err = one_error(cli(*args, env=env), "plugin 'typo'", "runyard-test-typo 1.2.3",
                        "'runyard_register_run_launchers'", "not a runyard hook",
                        "did you mean 'runyard_register_run_launcher'?", "RUNYARD_DISABLE_PLUGINS=typo")
        assert "Traceback" not in err
    # blocking it is the way out the message offers
    plugins = cli.json("plugins", "--json", env={**env, "RUNYARD_DISABLE_PLUGINS": "typo"})
    assert "typo" not in {p["name"] for p in plugins}
    assert not any("runyard_register_run_launchers" in p["hooks"] for p in plugins)


def test_a_hook_function_without_the_marker_is_an_error(cli, site):
    env = site("unmarked", """
        def runyard_register_storage(registry):
            raise AssertionError("never called: pluggy only sees marked functions")
    """)
    one_error(cli("plugins", env=env), "plugin 'unmarked' (distribution runyard-test-unmarked 1.2.3) defines "
              "'runyard_register_storage' without marking it with @runyard.hookimpl")


def test_a_hookimpl_argument_the_spec_does_not_have_is_one_line(cli, site):
    env = site("args", """
        from runyard import hookimpl

        @hookimpl
        def runyard_register_storage(registy):
            pass
    """)
    one_error(cli("run", "list", env=env), "plugin 'args'", "runyard-test-args 1.2.3",
              "runyard_register_storage has no argument 'registy'", "did you mean 'registry'?",
              "it is called with registry")


def test_a_plugin_that_fails_to_import_names_plugin_and_distribution(cli, site):
    env = site("noimport", """
        import runyard_test_no_such_dependency
    """)
    one_error(cli("run", "list", env=env), "plugin 'noimport'", "runyard-test-noimport 1.2.3",
              "failed to load", "ModuleNotFoundError", "runyard_test_no_such_dependency",
              "RUNYARD_DISABLE_PLUGINS=noimport")
    assert cli("run", "list", env={**env, "RUNYARD_DISABLE_PLUGINS": "noimport"}).returncode == 0


# ---- a component hook that raises ----------------------------------------------------------------

BROKEN_LAUNCHER = """
    from runyard import hookimpl

    @hookimpl
    def runyard_register_run_launcher(registry):
        from runyard_test_missing_sdk import NomadLauncher   # the lazy import the guide recommends
        registry.add("nomad", NomadLauncher)

    @hookimpl
    def runyard_register_run_coordinator(registry):
        from runyard.coordinators.default import DefaultRunCoordinator
        registry.add("nomad_default", DefaultRunCoordinator)
"""

def test_a_broken_component_hook_is_listed_and_the_other_plugins_still_are(cli, site):
    env = site("nomad", BROKEN_LAUNCHER)
    plugins = {p["name"]: p for p in cli.json("plugins", "--json", env=env)}
    nomad = plugins["nomad"]
    assert nomad["components"] == [{"kind": "run_coordinator", "name": "nomad_default"}]
    (broken,) = nomad["broken"]
    assert broken["kind"] == "run_launcher"
    assert broken["error"].startswith("ModuleNotFoundError: No module named 'runyard_test_missing_sdk'")
    assert "runyard_test_nomad.py:" in broken["error"]
    assert {"runyard.builtins", "sqlite"} <= set(plugins) and plugins["sqlite"]["broken"] == []

    text = cli.ok("plugins", env=env).stdout
    assert re.search(r"broken\s+run_launcher: ModuleNotFoundError: No module named 'runyard_test_missing_sdk'",
                     text)
    assert re.search(r"storage\s+sqlite", text) and re.search(r"run_coordinator\s+nomad_default", text)


def test_commands_that_do_not_need_the_broken_component_keep_working(cli, site, tiny_defs):
    env = site("nomad", BROKEN_LAUNCHER)
    assert cli.ok("--help", env=env).stdout
    assert cli.json("run", "list", "--json", env=env) == []
    info = cli.json("instance", "info", "--json", env=env)
    assert (info["run_coordinator"], info["run_launcher"]) == ("default", "process")
    defs = tiny_defs
    proc = cli.ok("job", "launch", "-f", defs, "-j", "tiny", "--wait", env=env)
    run_id = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
    assert cli.json("run", "show", run_id, "--json", env=env)["status"] == "SUCCESS"


def test_selecting_the_broken_plugins_component_names_plugin_distribution_and_error(cli, home, site, tiny_defs):
    env = site("nomad", BROKEN_LAUNCHER)
    (home / "runyard.yaml").write_text("run_launcher:\n  nomad: {}\n")
    assert cli.json("run", "list", "--json", env=env) == []  # storage alone does not need launchers
    for args in (("instance", "info"), ("job", "launch", "-f", tiny_defs, "-j", "tiny")):
        one_error(cli(*args, env=env), str(home / "runyard.yaml"), "unknown run launcher 'nomad'",
                  "plugin 'nomad' (distribution runyard-test-nomad 1.2.3) failed to register its run launchers",
                  "ModuleNotFoundError: No module named 'runyard_test_missing_sdk'")
    assert cli.json("run", "list", "--json", env=env) == []  # the failed launch stored no run


def test_a_registered_class_of_the_wrong_kind_leaves_its_plugin_broken(cli, site):
    env = site("wrongkind", """
        from runyard import hookimpl

        @hookimpl
        def runyard_register_run_launcher(registry):
            from runyard.coordinators.default import DefaultRunCoordinator
            registry.add("coord", DefaultRunCoordinator)
    """)
    (broken,) = {p["name"]: p for p in cli.json("plugins", "--json", env=env)}["wrongkind"]["broken"]
    assert ("runyard.coordinators.default.DefaultRunCoordinator is not a run launcher (it is a run coordinator)"
            in broken["error"])


# ---- selections ------------------------------------------------------------------------------------

def test_a_misspelled_component_name_suggests_the_installed_one(cli, home):
    (home / "runyard.yaml").write_text("run_launcher:\n  proces: {}\n")
    one_error(cli("instance", "info"), "unknown run launcher 'proces' (did you mean 'process'?)",
              "Installed run launchers: process")
    (home / "runyard.yaml").write_text("storage:\n  sqlit: {}\n")
    one_error(cli("run", "list"), "unknown storage 'sqlit' (did you mean 'sqlite'?)")


def test_a_class_of_the_wrong_kind_fails_when_the_instance_loads(cli, home):
    (home / "runyard.yaml").write_text(
        "run_launcher:\n  module: runyard.coordinators.queued\n  class: QueuedRunCoordinator\n")
    # `run list` never uses the launcher: the file is still refused, at load, with file, line and key
    one_error(cli("run", "list"), str(home / "runyard.yaml"), "line 3", "run_launcher.class",
              "runyard.coordinators.queued.QueuedRunCoordinator is not a run launcher (it is a run coordinator)",
              "subclasses runyard.launchers.base.RunLauncher")
    (home / "runyard.yaml").write_text("storage:\n  module: json\n  class: JSONDecoder\n")
    one_error(cli("instance", "info"), "storage.class", "json.decoder.JSONDecoder is not a storage")


# ---- names belong to registrations, not classes ----------------------------------------------------

def test_one_class_under_two_names_keeps_both_names(cli, home, site):
    env = site("alias", """
        from runyard import hookimpl

        @hookimpl
        def runyard_register_run_launcher(registry):
            from runyard.launchers.process import ProcessRunLauncher
            registry.add("local", ProcessRunLauncher)
    """)
    assert cli.json("instance", "info", "--json", env=env)["run_launcher"] == "process"
    (home / "runyard.yaml").write_text("run_launcher:\n  local: {}\n")
    assert cli.json("instance", "info", "--json", env=env)["run_launcher"] == "local"
    assert re.search(r"Run launcher\s+local\n", cli.ok("instance", "info", env=env).stdout)


def test_registries_leave_classes_untouched(home):
    from runyard import Instance
    from runyard.launchers.process import ProcessRunLauncher
    from runyard.plugins import get_registry

    assert get_registry("run_launcher").get("process") is ProcessRunLauncher
    assert "name" not in vars(ProcessRunLauncher)
    instance = Instance.open(home=str(home))
    try:
        assert instance.run_launcher.name == "process"
    finally:
        instance.dispose()
    assert "name" not in vars(ProcessRunLauncher)
    built = build_component(ProcessRunLauncher, ProcessRunLauncher.config_model(),
                            ComponentContext(home=str(home), name="elsewhere"))
    assert built.name == "elsewhere" and instance.run_launcher.name == "process"


def test_plugins_json_shape(cli):
    for plugin in cli.json("plugins", "--json"):
        assert set(plugin) == {"name", "distribution", "version", "components", "hooks", "broken"}
        assert plugin["broken"] == []


def test_a_known_name_whose_distribution_is_installed_but_broken_says_so():
    from runyard.errors import PluginError
    from runyard.launchers.process import ProcessRunLauncher
    from runyard.registry import ComponentRegistry

    def broken(registry):
        registry.add("docker", ProcessRunLauncher)  # dropped: the hook fails after it
        import runyard_test_no_docker_sdk  # noqa: F401

    def duplicate(registry):
        registry.add("process", type("Other", (ProcessRunLauncher,), {}))

    registry = ComponentRegistry("run_launcher")
    registry.collect(lambda registry: registry.add("process", ProcessRunLauncher), plugin="runyard.builtins",
                     distribution="runyard", version="0.1.0")
    registry.collect(broken, plugin="docker", distribution="runyard-launcher-docker", version="9.9")
    assert registry.names() == ["process"]
    (b,) = registry.broken()
    assert (b.plugin, b.kind) == ("docker", "run_launcher")
    with pytest.raises(PluginError) as info:
        registry.get("docker", where="runyard.yaml, line 2")
    assert str(info.value).startswith(
        "runyard.yaml, line 2: run launcher 'docker' is unavailable: plugin 'docker' (distribution "
        "runyard-launcher-docker 9.9) failed to register its run launchers: ModuleNotFoundError: No module "
        "named 'runyard_test_no_docker_sdk'")
    with pytest.raises(PluginError, match="registered twice: by runyard.builtins and by other"):
        registry.collect(duplicate, plugin="other", distribution="runyard-other", version="1")


# ---- lazy registration: "package.module:Class" ----------------------------------------------------

LAZY_PLUGIN = """
    from runyard import hookimpl

    @hookimpl
    def runyard_register_run_launcher(registry):
        registry.add("lazyproc", "runyard_test_lazyimpl:LazyLauncher")
        registry.add("lazymissing", "runyard_test_absent_sdk:Launcher")
        registry.add("lazywrong", "runyard.coordinators.default:DefaultRunCoordinator")
"""

LAZY_IMPL = """
import os
open(os.environ["LAZY_MARKER"], "a").write("imported\\n")

from runyard.launchers.process import ProcessRunLauncher

class LazyLauncher(ProcessRunLauncher):
    pass
"""


def test_a_class_registered_by_name_is_imported_only_when_selected(cli, home, site, tmp_path):
    env = site("lazy", LAZY_PLUGIN)
    (tmp_path / "site" / "runyard_test_lazyimpl.py").write_text(LAZY_IMPL)
    marker = tmp_path / "imported"
    env = {**env, "LAZY_MARKER": str(marker)}
    lazy = {p["name"]: p for p in cli.json("plugins", "--json", env=env)}["lazy"]
    assert lazy["components"] == [{"kind": "run_launcher", "name": n}
                                  for n in ("lazymissing", "lazyproc", "lazywrong")]
    assert lazy["broken"] == []  # nothing was imported, so nothing is known to be broken yet
    assert cli.json("instance", "info", "--json", env=env)["run_launcher"] == "process"
    assert not marker.exists()  # listing and loading an instance that selects another never import it

    (home / "runyard.yaml").write_text("run_launcher:\n  lazyproc: {}\n")
    assert cli.json("instance", "info", "--json", env=env)["run_launcher"] == "lazyproc"
    assert marker.read_text() == "imported\n"

    (home / "runyard.yaml").write_text("run_launcher:\n  lazymissing: {}\n")
    one_error(cli("instance", "info", env=env), str(home / "runyard.yaml"), "line 1",
              "run launcher 'lazymissing' is unavailable: plugin 'lazy' (distribution runyard-test-lazy 1.2.3) "
              "registered it as 'runyard_test_absent_sdk:Launcher', which failed to import: ModuleNotFoundError: "
              "No module named 'runyard_test_absent_sdk'")
    (home / "runyard.yaml").write_text("run_launcher:\n  lazywrong: {}\n")
    one_error(cli("instance", "info", env=env), "run launcher 'lazywrong' is unavailable: plugin 'lazy'",
              "runyard.coordinators.default.DefaultRunCoordinator is not a run launcher (it is a run coordinator)")


def test_a_registration_by_name_must_read_module_colon_class():
    from runyard.launchers.process import ProcessRunLauncher
    from runyard.registry import ComponentRegistry

    registry = ComponentRegistry("run_launcher")
    for bad in ("runyard.launchers.process.ProcessRunLauncher", "runyard.launchers.process:", ":Cls",
                "runyard launchers:Cls"):
        registry.collect(lambda registry, bad=bad: registry.add("x", bad), plugin="p", distribution="d",
                         version="1")
    for broken, bad in zip(registry.broken(), ("runyard.launchers.process.ProcessRunLauncher",
                                               "runyard.launchers.process:", ":Cls", "runyard launchers:Cls"),
                           strict=True):
        assert broken.error.startswith(f"PluginError: p registered run launcher 'x' as {bad!r}: a class is "
                                       "given as the class itself or as 'package.module:Class'"), broken.error
    # the same class by name and by reference is one registration, not a duplicate
    registry.collect(lambda registry: registry.add("process", "runyard.launchers.process:ProcessRunLauncher"),
                     plugin="a", distribution="a", version="1")
    registry.collect(lambda registry: registry.add("process", ProcessRunLauncher), plugin="b", distribution="b",
                     version="1")
    assert registry.get("process") is ProcessRunLauncher
