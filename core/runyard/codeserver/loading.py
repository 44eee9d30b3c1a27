"""Importing a location's definitions (and importing them again on reload) into one immutable
:class:`LoadedState`: the definitions and their snapshot, or the load error with the user's
traceback. A failure to load is a state the server reports, never an exception that stops it."""

from __future__ import annotations

import importlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..errors import DefinitionsLoadError
from ..storage.records import CodePointer
from .protocol import SerializedError
from .snapshot import LocationSnapshot


@dataclass(frozen=True, kw_only=True)
class LoadedState:
    """What one import of the definitions produced; swapped whole on reload, never mutated."""

    defs: Any = None
    snapshot: LocationSnapshot | None = None
    error: SerializedError | None = None
    loaded_at: float = 0.0

    @property
    def snapshot_id(self) -> str | None:
        return self.snapshot.snapshot_id if self.snapshot else None


def load_location(pointer: CodePointer) -> LoadedState:
    from ..workspace.loader import _user_traceback, load_definitions
    from .snapshot_builder import build_snapshot

    try:
        defs = load_definitions(pointer)
        snapshot = build_snapshot(defs)
    except DefinitionsLoadError as exc:
        return LoadedState(error=SerializedError(message=str(exc), traceback=exc.user_traceback, kind="load_error"),
                           loaded_at=time.time())
    except Exception as exc:  # e.g. a config model whose JSON schema cannot be generated
        return LoadedState(error=SerializedError(message=f"error while loading {pointer.describe()}: "
                                                         f"{type(exc).__name__}: {exc}",
                                                 traceback=_user_traceback(exc, None), kind="load_error"),
                           loaded_at=time.time())
    return LoadedState(defs=defs, snapshot=snapshot, loaded_at=time.time())


_RUNYARD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _is_library_file(path: str) -> bool:
    if path.startswith(_RUNYARD_DIR) or "site-packages" in path or "dist-packages" in path:
        return True
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return any(p and path.startswith(os.path.join(p, "lib")) for p in prefixes)


def purge_user_modules(pointer: CodePointer, baseline: set[str]) -> None:
    """Forget the modules the last import brought in from the user's directories, so a reload
    re-executes them. Libraries (site-packages, the standard library, runyard) stay imported."""
    roots = [os.path.abspath(p) + os.sep for p in
             (pointer.working_directory, os.path.dirname(pointer.python_file or "")) if p]
    top = (pointer.module or "").split(".")[0]
    for name, module in list(sys.modules.items()):
        if name in baseline:
            continue
        path = os.path.abspath(getattr(module, "__file__", None) or "") if getattr(module, "__file__", None) else ""
        user_file = bool(path) and any(path.startswith(r) for r in roots) and not _is_library_file(path)
        if name.startswith("runyard_user_") or user_file or (top and (name == top or name.startswith(top + "."))):
            del sys.modules[name]
    importlib.invalidate_caches()
