"""The plugin manager: built-ins plus every entry point in group ``runyard``.

Loading is lazy and happens once per process, on the first :func:`get_registry` call, so ``import
runyard`` and ``runyard --help`` never pay for it.
"""

from __future__ import annotations

import os
import threading
import traceback
from functools import cache
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import ComponentRegistry

hookimpl = pluggy.HookimplMarker("runyard")

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
            from . import builtins

            pm.register(builtins, name=BUILTIN_PLUGIN)
            from . import __version__

            _plugin_dists[BUILTIN_PLUGIN] = ("runyard", __version__)
            _load_entry_points(pm)
            _manager = pm
        return _manager


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    from importlib.metadata import entry_points

    blocked = _blocked()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked or pm.has_plugin(ep.name):
            continue
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin '{ep.name}' ({ep.value}, from distribution {dist_name or 'unknown'}) failed to "
                f"load: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
                f"Fix or uninstall it, or block it with {DISABLE_ENV}={ep.name}.") from exc
        pm.register(plugin, name=ep.name)
        _plugin_dists[ep.name] = (dist_name, dist.version if dist is not None else None)


@cache
def get_registry(kind: str) -> ComponentRegistry:
    """The registry of one component kind, filled by calling every plugin's register hook."""
    if kind not in COMPONENT_KINDS:
        raise ValueError(f"unknown component kind {kind!r}")
    pm = get_plugin_manager()
    registry = ComponentRegistry(kind)
    hook = getattr(pm.hook, f"runyard_register_{kind}")
    # Call each implementation ourselves so the registry knows which plugin added what.
    for impl in reversed(hook.get_hookimpls()):
        dist, version = _plugin_dists.get(impl.plugin_name, (None, None))
        registry._current = (impl.plugin_name, dist, version)
        impl.function(registry=registry)
    return registry


def list_plugins() -> list[dict[str, Any]]:
    """Every loaded plugin, its distribution and the components it provides."""
    pm = get_plugin_manager()
    provided: dict[str, list[dict[str, str]]] = {}
    for kind in COMPONENT_KINDS:
        for reg in get_registry(kind).registrations():
            provided.setdefault(reg.plugin, []).append({"kind": kind, "name": reg.name})
    out = []
    for name, _plugin in pm.list_name_plugin():
        dist, version = _plugin_dists.get(name, (None, None))
        hooks = sorted(h.name for h in pm.get_hookcallers(_plugin) or [])
        out.append({"name": name, "distribution": dist, "version": version,
                    "components": provided.get(name, []), "hooks": hooks})
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
