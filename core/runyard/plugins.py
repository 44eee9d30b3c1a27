"""The plugin manager: built-ins plus every entry point in group ``runyard``.

Loading is lazy and happens once per process, on first use (a registry lookup, a lifecycle hook,
the CLI's plugin commands), so ``import runyard`` never pays for it. pluggy does the work (``set_blocked``,
``load_setuptools_entrypoints``, ``check_pending``); this module turns its failures into one message
that names the plugin, its distribution and the hook.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .hookspecs import hookimpl as hookimpl  # re-exported: where existing plugins import it from
from .registry import ComponentRegistry, describe_plugin, did_you_mean, summarize_exception

ENTRY_POINT_GROUP = "runyard"
BUILTIN_PLUGIN = "runyard.builtins"
DISABLE_ENV = "RUNYARD_DISABLE_PLUGINS"
COMPONENT_KINDS = ("storage", "run_coordinator", "run_launcher", "executor")

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_plugin_dists: dict[str, tuple[str | None, str | None]] = {}


def _blocked() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    global _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager("runyard")
            pm.add_hookspecs(hookspecs)
            from . import __version__, builtins

            pm.register(builtins, name=BUILTIN_PLUGIN)
            for name in _blocked() - {BUILTIN_PLUGIN}:  # the built-ins cannot be blocked
                pm.set_blocked(name)
            _load_entry_points(pm)
            dists = {BUILTIN_PLUGIN: ("runyard", __version__)}
            for plugin, dist in pm.list_plugin_distinfo():
                dists[pm.get_name(plugin) or ""] = (dist.project_name, dist.version)
            _check_hooks(pm, dists)
            _plugin_dists.clear()
            _plugin_dists.update(dists)
            _manager = pm
        return _manager


def plugin_distribution(name: str) -> tuple[str | None, str | None]:
    """(distribution, version) of a loaded plugin; (None, None) for one registered by hand."""
    return _plugin_dists.get(name, (None, None))


def _entry_points() -> list[tuple[Any, Any]]:
    """(entry point, distribution) in group ``runyard``, in the order pluggy loads them."""
    from importlib.metadata import distributions

    return [(ep, dist) for dist in distributions() for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]


def _dist_label(dist: Any) -> tuple[str | None, str | None]:
    return (dist.metadata["Name"], dist.version) if dist is not None else (None, None)


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as exc:
        # pluggy stopped at the first entry point of its walk that it could not register (a failed
        # registration is rolled back), so that is the first one neither registered nor blocked
        pending = [(ep, d) for ep, d in _entry_points() if not pm.has_plugin(ep.name) and not pm.is_blocked(ep.name)]
        if not pending:
            raise
        ep, dist = pending[0]
        dist_name, version = _dist_label(dist)
        if isinstance(exc, pluggy.PluginValidationError):
            plain = str(exc).replace("\n", "; ")
            raise PluginError(_argument_problems(pm, exc.plugin, ep.name, dist_name, version) or
                              f"{describe_plugin(ep.name, dist_name, version)}: {plain}") from None
        raise PluginError(
            f"{describe_plugin(ep.name, dist_name, version)} failed to load ({ep.value}): "
            f"{summarize_exception(exc)}. Fix or uninstall it, or block it with {DISABLE_ENV}={ep.name}."
        ) from exc


def _argument_problems(pm: pluggy.PluginManager, plugin: object, name: str, dist: str | None,
                       version: str | None) -> str | None:
    """The hookimpls of ``plugin`` that take an argument their spec does not pass, as one message."""
    problems = []
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        caller = getattr(pm.hook, attr, None) if opts is not None else None
        if caller is None or caller.spec is None:
            continue
        impl = pluggy.HookImpl(plugin, name, getattr(plugin, attr), opts)
        allowed = list(caller.spec.argnames) + list(caller.spec.kwargnames)
        for arg in impl.argnames:
            if arg not in allowed:
                problems.append(f"{attr} has no argument '{arg}'{did_you_mean(arg, allowed)}; it is called "
                                f"with {', '.join(allowed) or 'no arguments'}")
    if not problems:
        return None
    return (f"{describe_plugin(name, dist, version)}: hook " + "; hook ".join(problems)
            + f". Fix the plugin, or block it with {DISABLE_ENV}={name}.")


def _check_hooks(pm: pluggy.PluginManager, dists: dict[str, tuple[str | None, str | None]]) -> None:
    """Every marked function must be a known hook, and every function named like a hook must be
    marked: either mistake would otherwise leave a hook that is never called."""
    known = sorted(hookspecs.documented_hooks())
    problems = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        for attr in known:
            if callable(getattr(plugin, attr, None)) and pm.parse_hookimpl_opts(plugin, attr) is None:
                problems.append(f"{describe_plugin(name, *dists.get(name, (None, None)))} defines '{attr}' "
                                "without marking it with @runyard.hookimpl, so it would never be called. "
                                f"Mark it, or block the plugin with {DISABLE_ENV}={name}.")
    if problems:
        raise PluginError("\n".join(problems))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        for hook_name, caller in vars(pm.hook).items():
            if hook_name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    plugin = describe_plugin(impl.plugin_name, *dists.get(impl.plugin_name, (None, None)))
                    problems.append(f"{plugin} implements '{hook_name}', which is not a runyard hook"
                                    f"{did_you_mean(hook_name, known)}. Fix the plugin, or block it with "
                                    f"{DISABLE_ENV}={impl.plugin_name}.")
        raise PluginError("\n".join(problems) or "a plugin implements an unknown hook") from None


@cache
def get_registry(kind: str) -> ComponentRegistry:
    """The registry of one component kind, filled by calling every plugin's register hook.

    A plugin whose hook raises is left out (and listed by :meth:`ComponentRegistry.broken`): its
    error is reported only by a lookup that needed it, never by one that another plugin answers."""
    if kind not in COMPONENT_KINDS:
        raise ValueError(f"unknown component kind {kind!r}")
    pm = get_plugin_manager()
    registry = ComponentRegistry(kind)
    hook = getattr(pm.hook, f"runyard_register_{kind}")
    # Each implementation is called on its own, so the registry knows which plugin added what.
    for impl in reversed(hook.get_hookimpls()):
        dist, version = plugin_distribution(impl.plugin_name)
        registry.collect(impl.function, plugin=impl.plugin_name, distribution=dist, version=version)
    return registry


def list_plugins() -> list[dict[str, Any]]:
    """Every loaded plugin, its distribution, the components it provides and what of it is broken."""
    pm = get_plugin_manager()
    provided: dict[str, list[dict[str, str]]] = {}
    broken: dict[str, list[dict[str, str]]] = {}
    for kind in COMPONENT_KINDS:
        registry = get_registry(kind)
        for reg in registry.registrations():
            provided.setdefault(reg.plugin, []).append({"kind": kind, "name": reg.name})
        for b in registry.broken():
            broken.setdefault(b.plugin, []).append(b.as_json())
    specs = set(hookspecs.documented_hooks())
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        dist, version = plugin_distribution(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [] if h.name in specs)
        out.append({"name": name, "distribution": dist, "version": version,
                    "components": provided.get(name, []), "hooks": hooks, "broken": broken.get(name, [])})
    return sorted(out, key=lambda p: (p["name"] != BUILTIN_PLUGIN, p["name"]))


def has_status_hooks() -> bool:
    """Whether any plugin implements ``runyard_run_status_changed`` (skip building its arguments)."""
    return bool(get_plugin_manager().hook.runyard_run_status_changed.get_hookimpls())


def notify_status_changed(run: Any, old_status: Any, new_status: Any, event: Any) -> None:
    """Call ``runyard_run_status_changed`` without ever letting a plugin break the caller."""
    pm = _manager
    if pm is None:  # nobody has loaded plugins in this process; load them now
        pm = get_plugin_manager()
    try:
        pm.hook.runyard_run_status_changed(run=run, old_status=old_status, new_status=new_status,
                                           event=event)
    except Exception:  # noqa: BLE001 - documented: plugin errors are logged and swallowed
        import logging

        logging.getLogger("runyard.plugins").exception("runyard_run_status_changed hook failed")


def reset_for_tests() -> None:
    global _manager
    with _lock:
        _manager = None
        _plugin_dists.clear()
    get_registry.cache_clear()
