"""Component registries: one per component kind, filled by the ``runyard_register_*`` hooks.

A registry maps a name (``sqlite``, ``process``...) to a class and remembers which plugin
distribution provided it, so ``runyard plugins`` can list it and an unknown name can say what to
install. A plugin whose hook raises is recorded as broken for that kind instead of failing the
process: only a lookup that cannot be answered without it reports its error.

The registry never changes the classes it holds: one class may be registered under several names,
and the name a component was selected by is given to it when it is built
(:func:`runyard.component.build_component`).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import PluginError

log = logging.getLogger("runyard.plugins")

# Names this project publishes as separate distributions, for "install X" hints.
KNOWN_DISTRIBUTIONS = {
    ("storage", "sqlite"): "runyard-storage-sqlite",
    ("storage", "postgres"): "runyard-storage-postgres",
    ("storage", "mysql"): "runyard-storage-mysql",
    ("run_launcher", "docker"): "runyard-launcher-docker",
    ("run_launcher", "k8s"): "runyard-launcher-k8s",
    ("executor", "multiprocess"): "runyard-executor-multiprocess",
    ("executor", "docker"): "runyard-launcher-docker",
    ("executor", "k8s"): "runyard-launcher-k8s",
}

KIND_LABELS = {
    "storage": "storage",
    "run_coordinator": "run coordinator",
    "run_launcher": "run launcher",
    "executor": "executor",
}

# The ABC every class of a kind subclasses, as (module, class): imported only when a class is checked.
KIND_BASES = {
    "storage": ("runyard.storage.base", "RunStorage"),
    "run_coordinator": ("runyard.coordinators.base", "RunCoordinator"),
    "run_launcher": ("runyard.launchers.base", "RunLauncher"),
    "executor": ("runyard.executors.base", "Executor"),
}

DISABLE_HINT = "RUNYARD_DISABLE_PLUGINS"


def kind_base(kind: str) -> type:
    """The ABC of a component kind (``RunLauncher`` for ``run_launcher``...)."""
    module, name = KIND_BASES[kind]
    return getattr(importlib.import_module(module), name)


def kind_mismatch(kind: str, cls: Any) -> str | None:
    """Why ``cls`` cannot serve as a component of ``kind``, or None when it can."""
    base = kind_base(kind)
    if isinstance(cls, type) and issubclass(cls, base):
        return None
    what = f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else repr(cls)
    others = [KIND_LABELS[k] for k in KIND_BASES
              if k != kind and isinstance(cls, type) and issubclass(cls, kind_base(k))]
    actually = f" (it is a {others[0]})" if others else ""
    return (f"{what} is not a {KIND_LABELS[kind]}{actually}: a {KIND_LABELS[kind]} class subclasses "
            f"{base.__module__}.{base.__qualname__}")


def did_you_mean(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match among ``choices``, else ``""``."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe_plugin(plugin: str, distribution: str | None, version: str | None = None) -> str:
    """``plugin 'audit' (distribution runyard-audit 0.1.0)``: how errors name a plugin."""
    dist = f"{distribution} {version}" if distribution and version else (distribution or "unknown")
    return f"plugin '{plugin}' (distribution {dist})"


def summarize_exception(exc: BaseException) -> str:
    """One line: the exception and the innermost frame that is not importlib's own."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen") and os.sep + "importlib" + os.sep not in f.filename]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}{where}" if first else f"{type(exc).__name__}{where}"


def class_path(target: type | str) -> str:
    """``package.module.Class`` of a registered class or of its ``"package.module:Class"`` string."""
    if isinstance(target, str):
        return target.replace(":", ".")
    return f"{target.__module__}.{target.__qualname__}"


@dataclass(frozen=True, kw_only=True)
class Registration:
    """One registered name. ``target`` is the class, or ``"package.module:Class"`` for a plugin that
    registers lazily: then the module is imported the first time the class is needed (:attr:`cls`),
    so a process that never selects the component never pays for its imports."""

    name: str
    target: type | str
    plugin: str
    distribution: str | None
    version: str | None

    @property
    def class_path(self) -> str:
        return class_path(self.target)

    @property
    def cls(self) -> type:
        """The class, imported now if it was registered by name (ImportError/AttributeError if it
        cannot be; :meth:`ComponentRegistry.get` turns that into a message naming the plugin)."""
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            return getattr(importlib.import_module(module), attr)
        return self.target


@dataclass(frozen=True, kw_only=True)
class BrokenPlugin:
    """A plugin whose register hook raised for one kind: its components of that kind are missing."""

    plugin: str
    distribution: str | None
    version: str | None
    kind: str
    error: str

    def describe(self) -> str:
        return (f"{describe_plugin(self.plugin, self.distribution, self.version)} failed to register its "
                f"{KIND_LABELS[self.kind]}s: {self.error}")

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "error": self.error}


class DuplicateComponentError(PluginError):
    """Two plugins claim one name: no choice between them is safe, so this one stops the process."""


class ComponentRegistry:
    """Registrations of one component kind. Plugins call :meth:`add`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Registration] = {}
        self._broken: list[BrokenPlugin] = []
        # who is registering right now (set by :meth:`collect`); adds outside it count as runyard's
        self._current: tuple[str, str | None, str | None] = ("runyard", "runyard", None)

    def collect(self, register: Callable[..., Any], *, plugin: str, distribution: str | None,
                version: str | None) -> None:
        """Call one plugin's register hook. If it raises, nothing it added stays and the plugin is
        recorded as broken for this kind; the other plugins' components stay usable."""
        before = dict(self._items)
        self._current = (plugin, distribution, version)
        try:
            register(registry=self)
        except DuplicateComponentError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is reported when it matters
            self._items = before
            broken = BrokenPlugin(plugin=plugin, distribution=distribution, version=version, kind=self.kind,
                                  error=summarize_exception(exc))
            self._broken.append(broken)
            log.debug("%s", broken.describe(), exc_info=True)
        finally:
            self._current = ("runyard", "runyard", None)

    def add(self, name: str, cls: type | str) -> None:
        """Register ``cls`` under ``name``. A second plugin claiming the same name is an error.

        ``cls`` is the class, or ``"package.module:Class"``: the module is then imported, and the
        class checked against the kind's ABC, only when a lookup asks for ``name``."""
        plugin, dist, version = self._current
        label = KIND_LABELS[self.kind]
        if not isinstance(name, str) or not name:
            raise PluginError(f"{plugin} registered a {label} under {name!r}: a name is a non-empty string")
        if isinstance(cls, str):
            module, sep, attr = cls.partition(":")
            if not (sep and module and attr.isidentifier() and all(p.isidentifier() for p in module.split("."))):
                raise PluginError(f"{plugin} registered {label} '{name}' as {cls!r}: a class is given as "
                                  "the class itself or as 'package.module:Class'")
        else:
            mismatch = kind_mismatch(self.kind, cls)
            if mismatch:
                raise PluginError(f"{plugin} registered {label} '{name}', but {mismatch}")
        existing = self._items.get(name)
        if existing and existing.class_path != class_path(cls):
            raise DuplicateComponentError(
                f"{label} name '{name}' is registered twice: by {existing.plugin} and by {plugin}. "
                f"Uninstall one of them or block it with {DISABLE_HINT}.")
        self._items[name] = Registration(name=name, target=cls, plugin=plugin, distribution=dist,
                                         version=version)

    def names(self) -> list[str]:
        return sorted(self._items)

    def registrations(self) -> list[Registration]:
        return [self._items[n] for n in self.names()]

    def broken(self) -> list[BrokenPlugin]:
        """Plugins whose hook for this kind raised."""
        return list(self._broken)

    def get(self, name: str, *, where: str | None = None, class_selection: bool = True) -> type:
        reg = self._items.get(name)
        if reg is not None:
            return reg.target if isinstance(reg.target, type) else self._load(reg, where)
        raise PluginError(self._unknown(name, where=where, class_selection=class_selection))

    def _load(self, reg: Registration, where: str | None) -> type:
        """Import a class registered by name, check its kind, and keep it for later lookups."""
        label = KIND_LABELS[self.kind]
        prefix = f"{where}: " if where else ""
        who = describe_plugin(reg.plugin, reg.distribution, reg.version)
        try:
            cls = reg.cls
        except Exception as exc:  # noqa: BLE001 - any import-time failure is the plugin's
            log.debug("%s: importing %s failed", who, reg.target, exc_info=True)
            raise PluginError(f"{prefix}{label} '{reg.name}' is unavailable: {who} registered it as "
                              f"'{reg.target}', which failed to import: {summarize_exception(exc)}. Fix or "
                              f"reinstall the plugin, or select another {label}.") from exc
        mismatch = kind_mismatch(self.kind, cls)
        if mismatch:
            raise PluginError(f"{prefix}{label} '{reg.name}' is unavailable: {who} registered it, but "
                              f"{mismatch}")
        self._items[reg.name] = Registration(name=reg.name, target=cls, plugin=reg.plugin,
                                             distribution=reg.distribution, version=reg.version)
        return cls

    def _unknown(self, name: str, *, where: str | None, class_selection: bool) -> str:
        label = KIND_LABELS[self.kind]
        prefix = f"{where}: " if where else ""
        hint = KNOWN_DISTRIBUTIONS.get((self.kind, name))
        owner = [b for b in self._broken if hint and b.distribution == hint]
        if owner:  # the name belongs to a plugin that is installed but broken
            b = owner[0]
            return (f"{prefix}{label} '{name}' is unavailable: {b.describe()}. Fix or reinstall {hint}, "
                    f"or select another {label}.")
        installed = ", ".join(self.names()) or "(none)"
        # A name we publish as a distribution is not a typo: the install hint below says what to do.
        suggestion = "" if hint else did_you_mean(name, self.names())
        message = (f"{prefix}unknown {label} '{name}'{suggestion}. "
                   f"Installed {label}s: {installed}.")
        if hint:
            message += f" To use '{name}', install the {hint} distribution (pip install {hint})."
        elif self._broken:
            message += " It may come from a plugin that failed: " + "; ".join(
                b.describe() for b in self._broken) + "."
        elif class_selection:
            message += (" A third-party component is selected by the name its plugin registers, or with"
                        " {module: ..., class: ..., config: {...}}.")
        else:
            message += " Install the plugin that registers it."
        return message

    def as_json(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "class": r.class_path,
                 "plugin": r.plugin, "distribution": r.distribution, "version": r.version}
                for r in self.registrations()]
