"""``{env: NAME}`` and ``{env: NAME, default: VALUE}`` on any scalar of a config file.

Resolution happens in the process that uses the value (a run worker resolves its own), so a
secret never has to travel on a command line or sit resolved in a file.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from .yaml_source import format_path

_ENV_KEYS = {"env"}
_ENV_KEYS_WITH_DEFAULT = {"env", "default"}


def is_env_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) in (_ENV_KEYS, _ENV_KEYS_WITH_DEFAULT) \
        and isinstance(value.get("env"), str)


def env_names(value: Any) -> set[str]:
    """The names of every variable ``{env: NAME}`` in ``value`` refers to."""
    if is_env_ref(value):
        return {value["env"]}
    if isinstance(value, dict):
        return {name for v in value.values() for name in env_names(v)}
    if isinstance(value, list):
        return {name for v in value for name in env_names(v)}
    return set()


def resolve_env(value: Any, *, source: str | None = None, path: tuple = (), lines: Any = None,
                environ: dict[str, str] | None = None, origins: dict[tuple, str] | None = None) -> Any:
    """Return ``value`` with every env reference replaced by the variable's value. ``origins``, when
    given, collects ``{key path: variable name}`` so a bad value can be reported with its variable."""
    environ = os.environ if environ is None else environ
    if is_env_ref(value):
        name = value["env"]
        if origins is not None:
            origins[path] = name
        if name in environ:
            return environ[name]
        if "default" in value:
            return value["default"]
        raise ConfigError(f"environment variable {name} is not set (referenced as {{env: {name}}})",
                          source=source, path=format_path(path) or None,
                          line=lines.line_of(path) if lines else None)
    if isinstance(value, dict):
        return {k: resolve_env(v, source=source, path=path + (k,), lines=lines, environ=environ, origins=origins)
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, source=source, path=path + (i,), lines=lines, environ=environ, origins=origins)
                for i, v in enumerate(value)]
    return value
