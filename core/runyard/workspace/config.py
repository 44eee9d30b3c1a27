"""The workspace file (``workspace.yaml``): which code locations the daemon and the web UI serve.

::

    load_from:
      - python_file: defs.py                 # a local code server is started for it
      - python_file: other/defs.py
        location_name: other                 # default: the file's stem
        attribute: defs                      # the Definitions object (or job) to use
        working_directory: other             # default: the file's directory
      - python_module: my_pkg.defs           # same options; working_directory default: this file's dir
      - code_server:                         # a code server someone else runs
          host: code.internal                # default 127.0.0.1
          port: 4000
          location_name: remote              # default: host:port
          token: {env: ETL_CODE_TOKEN}       # the server's token (never written in the file)
          image: etl:2024-06                 # optional, any entry: the image its runs' containers use
          container_context:                 # optional, any entry: per-launcher settings for its runs
            k8s: {namespace: etl, resources: {limits: {memory: 2Gi}}}

Relative paths are relative to the workspace file's directory. Errors name the file, the line and
the key path; a python_file that does not exist is an error naming it. Parsing imports no user code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..codeserver.protocol import default_location_name
from ..errors import ConfigError
from ..instance.yaml_source import YamlDocument, format_path, load_yaml_file
from ..storage.records import CodePointer

DEFAULT_WORKSPACE_FILE = "workspace.yaml"
ENTRY_KINDS = ("python_file", "python_module", "code_server")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _CodeServerEntry(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    location_name: str | None = None
    token: dict[str, str] | None = None
    image: str | None = Field(None, min_length=1, max_length=512)
    container_context: dict[str, dict[str, Any]] | None = None

    @field_validator("token", mode="before")
    @classmethod
    def _env_only(cls, value: Any) -> Any:
        from ..instance.env import is_env_ref

        if value is not None and not (is_env_ref(value) and set(value) == {"env"}):
            # the message must not echo the value: it may be the secret itself
            raise PydanticCustomError("token_env", "must be {{env: NAME}}, the environment variable holding the "
                                      "code server's token (a secret is not written in the workspace file)")
        return value


class _Entry(_Strict):
    python_file: str | None = None
    python_module: str | None = None
    code_server: _CodeServerEntry | None = None
    location_name: str | None = None
    attribute: str | None = None
    working_directory: str | None = None
    image: str | None = Field(None, min_length=1, max_length=512)
    container_context: dict[str, dict[str, Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise PydanticCustomError("entry_kind", "an entry is a mapping with one of: {kinds}",
                                      {"kinds": ", ".join(ENTRY_KINDS)})
        kinds = [k for k in ENTRY_KINDS if k in data]
        if len(kinds) != 1:
            found = f" (found {', '.join(kinds)})" if kinds else ""
            raise PydanticCustomError("entry_kind", "an entry needs exactly one of: {kinds}{found}",
                                      {"kinds": ", ".join(ENTRY_KINDS), "found": found})
        if kinds[0] == "code_server":
            options = sorted(k for k in data if k in ("location_name", "attribute", "working_directory", "image",
                                                       "container_context"))
            if options:
                raise PydanticCustomError(
                    "entry_option", "'{key}' does not apply to a code_server entry (give location_name "
                    "inside code_server: {{host, port, location_name, token, image, container_context}})",
                    {"key": options[0]})
        elif data.get(kinds[0]) in (None, ""):
            raise PydanticCustomError("entry_value", "{kind} needs a value", {"kind": kinds[0]})
        return data


class _WorkspaceFile(_Strict):
    load_from: list[_Entry]


@dataclass(frozen=True)
class LocationOrigin:
    """One ``load_from`` entry, resolved: absolute paths, a location name."""

    kind: str  # python_file | python_module | code_server
    location_name: str
    python_file: str | None = None
    module: str | None = None
    attribute: str | None = None
    working_directory: str | None = None
    host: str | None = None
    port: int | None = None
    #: the container image runs of this location use (the entry's ``image``)
    image: str | None = None
    #: settings for the run launcher and executor of this location's runs, by launcher name
    #: (``{"k8s": {...}}``); each launcher applies the keys its ``location_overrides`` allow
    container_context: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)
    # a code_server entry's token, resolved from its {env: NAME}; kept out of repr and comparisons
    token: str | None = field(default=None, repr=False, compare=False)

    @property
    def is_local(self) -> bool:
        """A local origin gets a code server started (and supervised) by the workspace."""
        return self.kind != "code_server"

    def code_pointer(self) -> CodePointer | None:
        if not self.is_local:
            return None
        return CodePointer(python_file=self.python_file, module=self.module, attribute=self.attribute,
                           working_directory=self.working_directory)

    def describe(self) -> str:
        if self.kind == "python_file":
            text = f"python_file {self.python_file}"
        elif self.kind == "python_module":
            text = f"python_module {self.module}"
        else:
            return f"code_server {self.host}:{self.port}"
        return text + (f" (attribute {self.attribute})" if self.attribute else "")

    def to_json(self) -> dict[str, Any]:
        keys = ("python_file", "module", "attribute", "working_directory") if self.is_local else ("host", "port")
        return {"kind": self.kind, **{k: getattr(self, k) for k in (*keys, "image") if getattr(self, k) is not None},
                **({"container_context": self.container_context} if self.container_context else {})}


def _check_name(name: str, doc: YamlDocument, path: tuple) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(f"location name '{name}' must be letters, digits, _ . : or - (no spaces)",
                          source=doc.source, path=format_path(path), line=doc.line_of(path))


def _resolve_token(ref: dict[str, str] | None, doc: YamlDocument, path: tuple) -> str | None:
    from ..instance.env import resolve_env

    if ref is None:
        return None
    token = resolve_env(ref, source=doc.source, path=path, lines=doc)
    if not token:
        raise ConfigError(f"environment variable {ref['env']} is empty (referenced as {{env: {ref['env']}}})",
                          source=doc.source, path=format_path(path), line=doc.line_of(path))
    return token


def parse_workspace(doc: YamlDocument) -> list[LocationOrigin]:
    """Validate a loaded workspace document; return its locations in file order."""
    from ..config_models import validate_model

    if doc.data is None:
        raise ConfigError("empty workspace file: it needs a `load_from:` list of code locations",
                          source=doc.source)
    model = validate_model(_WorkspaceFile, doc.data, source=doc.source, doc=doc)
    base = os.path.dirname(os.path.abspath(doc.source))

    def resolve(p: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(p)))

    origins: list[LocationOrigin] = []
    seen: dict[str, tuple] = {}
    for i, entry in enumerate(model.load_from):
        at = ("load_from", i)
        if entry.code_server is not None:
            cs = entry.code_server
            name = cs.location_name or f"{cs.host}:{cs.port}"
            name_path = at + ("code_server", "location_name")
            origin = LocationOrigin("code_server", name, host=cs.host, port=cs.port, image=cs.image,
                                    container_context=cs.container_context or {},
                                    token=_resolve_token(cs.token, doc, at + ("code_server", "token")))
        else:
            wd = resolve(entry.working_directory) if entry.working_directory else None
            if wd is not None and not os.path.isdir(wd):
                key = at + ("working_directory",)
                raise ConfigError(f"working directory not found: {wd}", source=doc.source,
                                  path=format_path(key), line=doc.line_of(key))
            if entry.python_file is not None:
                path = resolve(entry.python_file)
                key = at + ("python_file",)
                if not os.path.isfile(path):
                    raise ConfigError(f"definitions file not found: {path}", source=doc.source,
                                      path=format_path(key), line=doc.line_of(key))
                name = entry.location_name or default_location_name(python_file=path)
                origin = LocationOrigin("python_file", name, python_file=path, attribute=entry.attribute,
                                        working_directory=wd or os.path.dirname(path), image=entry.image,
                                        container_context=entry.container_context or {})
            else:
                module = str(entry.python_module)
                name = entry.location_name or default_location_name(module=module)
                origin = LocationOrigin("python_module", name, module=module, attribute=entry.attribute,
                                        working_directory=wd or base, image=entry.image,
                                        container_context=entry.container_context or {})
            name_path = at + ("location_name",)
        _check_name(name, doc, name_path if doc.line_of(name_path) else at)
        if name in seen:
            raise ConfigError(f"two code locations are named '{name}' (the other is {format_path(seen[name])}); "
                              "give one a location_name", source=doc.source, path=format_path(at),
                              line=doc.line_of(at))
        seen[name] = at
        origins.append(origin)
    return origins


def load_workspace_file(path: str = DEFAULT_WORKSPACE_FILE) -> list[LocationOrigin]:
    """Read and validate ``path``; raise :class:`runyard.errors.ConfigError` naming file, line and key."""
    if not os.path.exists(path):
        raise ConfigError(f"workspace file not found (give one with -w FILE; default ./{DEFAULT_WORKSPACE_FILE})",
                          source=os.path.abspath(path))
    return parse_workspace(load_yaml_file(path))
