"""Component registries: one per component kind, filled by the ``runyard_register_*`` hooks.

A registry maps a name (``sqlite``, ``process``...) to a class and remembers which plugin
distribution provided it, so ``runyard plugins`` can list it and an unknown name can say what to
install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import PluginError

# Names this project publishes as separate distributions, for "install X" hints.
KNOWN_DISTRIBUTIONS = {
    ("storage", "sqlite"): "runyard-storage-sqlite",
    ("storage", "postgres"): "runyard-storage-postgres",
    ("run_launcher", "docker"): "runyard-launcher-docker",
    ("run_launcher", "k8s"): "runyard-launcher-k8s",
    ("executor", "multiprocess"): "runyard-executor-multiprocess",
}

KIND_LABELS = {
    "storage": "storage",
    "run_coordinator": "run coordinator",
    "run_launcher": "run launcher",
    "executor": "executor",
}


@dataclass
class Registration:
    name: str
    cls: type
    plugin: str
    distribution: str | None
    version: str | None


class ComponentRegistry:
    """Registrations of one component kind. Plugins call :meth:`add`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Registration] = {}
        # set by the plugin manager while it calls each plugin's hook
        self._current: tuple[str, str | None, str | None] = ("runyard", "runyard", None)

    def add(self, name: str, cls: type) -> None:
        """Register ``cls`` under ``name``. A second plugin claiming the same name is an error."""
        plugin, dist, version = self._current
        existing = self._items.get(name)
        if existing and existing.cls is not cls:
            raise PluginError(
                f"{KIND_LABELS[self.kind]} name '{name}' is registered twice: by {existing.plugin} "
                f"and by {plugin}. Uninstall one of them or block it with RUNYARD_DISABLE_PLUGINS.")
        cls.name = name
        self._items[name] = Registration(name, cls, plugin, dist, version)

    def names(self) -> list[str]:
        return sorted(self._items)

    def registrations(self) -> list[Registration]:
        return [self._items[n] for n in self.names()]

    def get(self, name: str, *, where: str | None = None, class_selection: bool = True) -> type:
        reg = self._items.get(name)
        if reg is not None:
            return reg.cls
        label = KIND_LABELS[self.kind]
        installed = ", ".join(self.names()) or "(none)"
        hint = KNOWN_DISTRIBUTIONS.get((self.kind, name))
        if hint:
            install = f" To use '{name}', install the {hint} distribution (pip install {hint})."
        elif class_selection:
            install = (" A third-party component is selected by the name its plugin registers, or with"
                       " {module: ..., class: ..., config: {...}}.")
        else:
            install = " Install the plugin that registers it."
        prefix = f"{where}: " if where else ""
        raise PluginError(f"{prefix}unknown {label} '{name}'. Installed {label}s: {installed}.{install}")

    def as_json(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "class": f"{r.cls.__module__}.{r.cls.__qualname__}",
                 "plugin": r.plugin, "distribution": r.distribution, "version": r.version}
                for r in self.registrations()]
