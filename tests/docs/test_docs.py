"""The docs cannot drift from the code: every hook is documented with its signature, every instance
file key, every built-in component's config key and every CLI command appears in ``docs/``. What to
check is read from the code (hook specs, pydantic models, registries, the click group), so a hook,
key, component or command added later is checked without touching this file.

Also: the launcher and coordinator walk-throughs of ``docs/plugin-authors.md`` are real code that
passes the conformance suites, the way a new author would try them.

Needs: nothing beyond Python (the walk-through checks start real run workers).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from functools import cache
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from runyard.hookspecs import documented_hooks
from runyard.instance.sections import get_section_registry
from runyard.instance.settings import InstanceSettings
from runyard.plugins import COMPONENT_KINDS, get_plugin_manager, get_registry
from runyard.registry import KNOWN_DISTRIBUTIONS

pytest_plugins = ("pytester",)

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
GUIDE = DOCS / "plugin-authors.md"

#: the docs/plugins/<prefix>_<name>.md page of each component kind
PAGE_PREFIX = {"storage": "storage", "run_coordinator": "coordinator", "run_launcher": "launcher",
               "executor": "executor"}


@cache
def read(path: Path) -> str:
    assert path.is_file(), f"{path} is missing"
    return path.read_text(encoding="utf-8")


def headings(markdown: str) -> list[str]:
    """Markdown ATX headings, ignoring ``#`` comment lines inside fenced code blocks."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6}\s", line):
            found.append(line.lstrip("#").strip())
    return found


def section(markdown: str, heading: str) -> str:
    """The text under the heading ``heading`` (any level) up to the next heading of its level or higher."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#{1,6})\s+(.*)", line)
        if m and m.group(2).strip() == heading:
            level = len(m.group(1))
            out, fenced = [], False
            for rest in lines[i + 1:]:
                if rest.lstrip().startswith(("```", "~~~")):
                    fenced = not fenced
                m2 = None if fenced else re.match(r"(#{1,6})\s", rest)
                if m2 and len(m2.group(1)) <= level:
                    break
                out.append(rest)
            return "\n".join(out)
    raise AssertionError(f"no heading {heading!r}")


def code_blocks(markdown: str) -> dict[str, str]:
    """Fenced Python blocks that start with a ``# path/to/file.py`` comment, by that path."""
    blocks = {}
    for block in re.findall(r"```python\n(.*?)```", markdown, flags=re.S):
        first = block.splitlines()[0]
        m = re.match(r"#\s*([\w/]+\.py)\b", first)
        if m:
            blocks[m.group(1)] = block
    return blocks


# ---- key paths of pydantic models ---------------------------------------------------------------------

def _models_in(annotation: typing.Any) -> tuple[list[type[BaseModel]], bool, bool]:
    """(the models an annotation holds, whether they sit in a list, whether a scalar is an
    alternative). ``X | None`` is just X; ``list[X]`` is X in a list."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False, False
    if origin in (list, tuple, set, frozenset):
        models, _, scalar = _models_in(typing.get_args(annotation)[0])
        return models, True, scalar
    if origin in (typing.Union, types.UnionType):
        models, in_list, scalar = [], False, False
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            sub, sub_list, sub_scalar = _models_in(arg)
            models += sub
            in_list = in_list or sub_list
            scalar = scalar or sub_scalar or not sub
        return models, in_list, scalar
    return [], False, True


def key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf key a user can write in ``model``'s mapping, dotted (``a.b``, ``a[].b`` in lists).
    A field that holds a model (alone, optional or in a list) is walked; one that may also be a
    scalar is a leaf."""
    paths = []
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        models, in_list, scalar = _models_in(info.annotation)
        if models and not scalar:
            for sub in models:
                paths += key_paths(sub, key + ("[]." if in_list else "."))
        else:
            paths.append(key)
    return paths


def undocumented(paths: list[str], text: str) -> list[str]:
    return [p for p in paths if f"`{p}`" not in text]


# ---- hooks ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hook", sorted(documented_hooks()))
def test_every_hook_has_a_heading_with_its_signature(hook):
    spec = documented_hooks()[hook]
    signature = f"{hook}({', '.join(inspect.signature(spec).parameters)})"
    titles = [h.strip("`") for h in headings(read(GUIDE))]
    assert signature in titles, (f"{GUIDE.name} needs the heading `### {signature}` (found: "
                                 f"{[h for h in titles if hook in h]})")


def test_hooks_are_found():
    assert len(documented_hooks()) >= 6


# ---- instance file --------------------------------------------------------------------------------------

def instance_key_paths() -> list[str]:
    """runyard's own keys plus every installed plugin's section."""
    paths = key_paths(InstanceSettings)
    for registration in get_section_registry(frozenset(InstanceSettings.model_fields)).registrations():
        paths += key_paths(registration.model, registration.name + ".")
    return paths


def test_every_instance_file_key_is_documented():
    paths = instance_key_paths()
    assert {"storage", "run_launcher", "daemon.lease_seconds", "compute_logs.local.base_dir"} <= set(paths)
    missing = undocumented(paths, read(DOCS / "instance.md"))
    assert not missing, f"docs/instance.md does not mention these instance file keys (as `key.path`): {missing}"


# ---- built-in components --------------------------------------------------------------------------------

def builtin_components() -> list[tuple[str, str, type]]:
    """(kind, name, class) of every installed component that runyard itself publishes: core's
    built-ins and the plugins of this repository."""
    ours = {"runyard", *KNOWN_DISTRIBUTIONS.values()}
    return [(kind, r.name, r.cls) for kind in COMPONENT_KINDS for r in get_registry(kind).registrations()
            if r.distribution in ours]


def test_builtin_components_are_found():
    found = {(kind, name) for kind, name, _ in builtin_components()}
    assert {("storage", "sqlite"), ("run_coordinator", "queued"), ("run_launcher", "process"),
            ("executor", "in_process")} <= found


@pytest.mark.parametrize("kind, name, cls", builtin_components(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_builtin_component_config_key_is_documented(kind, name, cls):
    page = DOCS / "plugins" / f"{PAGE_PREFIX[kind]}_{name}.md"
    text = read(page)
    assert f"`{name}`" in text, f"{page} does not name the component `{name}`"
    missing = undocumented(key_paths(cls.config_model), text)
    assert not missing, f"{page} does not document these config keys of {cls.__name__}: {missing}"


# ---- CLI ------------------------------------------------------------------------------------------------

def command_paths() -> list[str]:
    """Every command and subcommand of ``runyard``, with the commands installed plugins add."""
    from runyard.cli.main import cli

    group = click.Group("runyard", commands=dict(cli.commands))  # plugins add to a copy, not to `cli`
    get_plugin_manager().hook.runyard_register_commands(cli=group)
    paths = []

    def walk(command: click.Command, prefix: str) -> None:
        paths.append(prefix)
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                walk(sub, f"{prefix} {sub_name}")

    for name, command in group.commands.items():
        walk(command, f"runyard {name}")
    return paths


def test_every_cli_command_is_documented():
    paths = command_paths()
    assert {"runyard run list", "runyard schedule start", "runyard webui"} <= set(paths)
    text = read(DOCS / "cli.md")
    titles = headings(text)
    missing = []
    for path in paths:
        *parents, last = path.split(" ")
        parent = " ".join(parents)
        # a heading `runyard run list`, or a synopsis line `runyard run list ...` / `runyard run list|show`
        synopsis = re.compile(rf"^{re.escape(parent)}\s+(\S+\|)*{re.escape(last)}(\||\s|$)", re.M)
        if not any(f"`{path}`" in t for t in titles) and not synopsis.search(text):
            missing.append(path)
    assert not missing, f"docs/cli.md does not document: {missing}"


# ---- the walk-throughs run ------------------------------------------------------------------------------

def suite_size(module: str, name: str) -> int:
    """How many tests a conformance suite has (all must pass: none is skipped for these examples)."""
    import importlib

    suite = getattr(importlib.import_module(module), name)
    return len([n for n in dir(suite) if n.startswith("test_")])


def _write_package(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    for path, source in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        (target.parent / "__init__.py").touch()
        target.write_text(source)


@pytest.mark.parametrize("heading, module_suffix, cls, suite, config_fixture, config", [
    ("Writing a run launcher", "launcher.py", "NiceLauncher", "runyard.testing.launcher:LauncherConformanceSuite",
     "launcher_config", {"grace_period_seconds": 1}),
    ("Writing a run coordinator", "coordinator.py", "OneAtATimeCoordinator",
     "runyard.testing.coordinator:CoordinatorConformanceSuite", "coordinator_config", {}),
])
def test_the_walk_through_passes_its_conformance_suite(pytester, heading, module_suffix, cls, suite,
                                                       config_fixture, config):
    """The guide's example, copied out as a new author would, selected by {module, class}."""
    blocks = code_blocks(section(read(GUIDE), heading))
    path = next(p for p in blocks if p.endswith(module_suffix))
    _write_package(pytester, {path: blocks[path]})
    suite_module, suite_name = suite.split(":")
    selection = {"module": path[:-3].replace("/", "."), "class": cls, "config": config}
    pytester.makepyfile(test_walk_through=f"""
        import pytest
        from {suite_module} import {suite_name}

        class TestWalkThrough({suite_name}):
            @pytest.fixture
            def {config_fixture}(self):
                return {selection!r}
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=suite_size(suite_module, suite_name))


# ---- run tags -------------------------------------------------------------------------------------------

def test_every_run_tag_is_documented():
    from runyard import tags

    text = read(DOCS / "concepts.md")
    names = [n for n in dir(tags) if n.endswith("_TAG")]
    assert len(names) == len(tags.ALL_TAGS), f"runyard.tags.ALL_TAGS must list every *_TAG: {names}"
    missing = [f"{n} = {getattr(tags, n)!r}" for n in names if f"| `{getattr(tags, n)}` | `{n}` |" not in text]
    assert not missing, f"docs/concepts.md's tag table lacks: {missing}"
