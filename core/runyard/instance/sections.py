"""Instance-file sections owned by plugins (``webui:`` belongs to runyard-webui).

A plugin registers a top-level key and the pydantic model of its block through
``runyard_register_instance_sections(registry)``; core validates the block when the instance file
loads, with the same file / line / key-path errors as its own keys, and ``runyard instance info``
shows it. The plugin reads its validated block with ``instance.section(name)``.

Plugins are only loaded for this when the file has a top-level key that core does not own, so a
file with core keys only never pays for plugin loading here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import PluginError
from .yaml_source import YamlDocument

# Sections of this project's separately published distributions, for "install X" hints when the
# file has the section but the distribution is not installed (or is blocked).
KNOWN_SECTIONS = {
    "webui": "runyard-webui",
}


@dataclass(frozen=True, kw_only=True)
class SectionRegistration:
    name: str
    model: type[BaseModel]
    plugin: str
    distribution: str | None


class SectionRegistry:
    """Top-level instance-file keys registered by plugins. Plugins call :meth:`add`."""

    def __init__(self, core_keys: frozenset[str]):
        self._core_keys = core_keys
        self._items: dict[str, SectionRegistration] = {}
        self._current: tuple[str, str | None] = ("runyard", "runyard")  # set while each hook runs

    def add(self, name: str, model: type[BaseModel]) -> None:
        """Own the top-level key ``name``; its block is validated against ``model``.

        ``model`` must accept an empty mapping (every key has a default): an absent block is the
        model's defaults. Fields holding secrets should be typed ``pydantic.SecretStr`` so no
        listing or error shows them.
        """
        plugin, dist = self._current
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            raise PluginError(f"plugin {plugin} registered instance section '{name}' with {model!r}, "
                              "which is not a pydantic model class")
        if name in self._core_keys:
            raise PluginError(f"plugin {plugin} registered instance section '{name}', a key runyard itself "
                              "owns; pick another name")
        existing = self._items.get(name)
        if existing is not None and existing.model is not model:
            raise PluginError(f"instance section '{name}' is registered twice: by {existing.plugin} and by "
                              f"{plugin}. Uninstall one of them or block it with RUNYARD_DISABLE_PLUGINS.")
        try:
            model.model_validate({})
        except ValidationError as exc:
            raise PluginError(f"plugin {plugin} registered instance section '{name}' whose model "
                              f"{model.__qualname__} rejects an empty block (every key needs a default): "
                              f"{exc.errors()[0].get('msg')}") from None
        self._items[name] = SectionRegistration(name=name, model=model, plugin=plugin, distribution=dist)

    def get(self, name: str) -> SectionRegistration | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def registrations(self) -> list[SectionRegistration]:
        return [self._items[n] for n in self.names()]

    def describe_installed(self) -> str:
        """"webui (runyard-webui), ..." or "none", for messages."""
        return ", ".join(f"{r.name} ({r.distribution or r.plugin})" for r in self.registrations()) or "none"


_cache: tuple[Any, SectionRegistry] | None = None


def get_section_registry(core_keys: frozenset[str]) -> SectionRegistry:
    """Every plugin's sections, built once per plugin manager (tests reset the manager)."""
    global _cache
    from ..plugins import get_plugin_manager, plugin_distribution

    pm = get_plugin_manager()
    if _cache is not None and _cache[0] is pm:
        return _cache[1]
    registry = SectionRegistry(core_keys)
    # One implementation at a time, so the registry knows which plugin added what.
    for impl in reversed(pm.hook.runyard_register_instance_sections.get_hookimpls()):
        registry._current = (impl.plugin_name, plugin_distribution(impl.plugin_name)[0])
        impl.function(registry=registry)
    _cache = (pm, registry)
    return registry


def unknown_key_message(key: str, core_keys: frozenset[str], registry: SectionRegistry) -> str:
    """The message for a top-level key nobody owns: what is allowed, and what to install."""
    dist = KNOWN_SECTIONS.get(key)
    if dist is not None:
        return (f"this section belongs to {dist}, which is not installed (or is blocked by "
                f"RUNYARD_DISABLE_PLUGINS): pip install {dist}, or remove the '{key}' block")
    return (f"unknown key. runyard's keys: {', '.join(sorted(core_keys))}; sections of installed plugins: "
            f"{registry.describe_installed()}")


@dataclass(frozen=True, kw_only=True)
class PendingSection:
    """A section block holding ``{env: ...}`` references, validated when its plugin first asks for it."""

    registration: SectionRegistration
    key: Any
    value: Any


def validate_sections(raw: dict[str, Any], core_keys: frozenset[str],
                      doc: YamlDocument) -> tuple[dict[str, BaseModel], dict[str, PendingSection]]:
    """The plugin sections of an instance file (``raw``: its top-level keys runyard does not own),
    each validated against its plugin's model: ``(validated, pending)``. A block that refers to
    environment variables is pending: it is resolved and validated by :func:`resolve_section` in
    the process that uses it (the web UI resolves its password; a run worker never does). A key no
    installed plugin owns is an error naming the installed sections (or the distribution to install)."""
    if not raw:
        return {}, {}
    from ..config_models import validate_model
    from ..errors import ConfigError
    from .env import env_names

    registry = get_section_registry(core_keys)
    unknown = [key for key in raw if registry.get(str(key)) is None]
    if unknown:
        key = unknown[0]
        more = f" (and {len(unknown) - 1:,} more unknown keys)" if len(unknown) > 1 else ""
        raise ConfigError(unknown_key_message(str(key), core_keys, registry) + more, source=doc.source,
                          path=str(key), line=doc.line_of((key,)))
    out: dict[str, BaseModel] = {}
    pending: dict[str, PendingSection] = {}
    for key, value in raw.items():
        reg = registry.get(str(key))
        if env_names(value):
            pending[reg.name] = PendingSection(registration=reg, key=key, value=value)
        else:
            out[reg.name] = validate_model(reg.model, value, source=doc.source, path=(key,), doc=doc)
    return out, pending


def resolve_section(pending: PendingSection, doc: YamlDocument) -> BaseModel:
    """Resolve a pending section's ``{env: ...}`` references and validate it (errors name the file,
    line, key and the variable a bad value came from)."""
    from ..config_models import validate_model
    from .env import resolve_env

    origins: dict[tuple, str] = {}
    value = resolve_env(pending.value, source=doc.source, path=(pending.key,), lines=doc, origins=origins)
    return validate_model(pending.registration.model, value, source=doc.source, path=(pending.key,), doc=doc,
                          env_origins=origins)
