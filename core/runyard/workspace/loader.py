"""Import a definitions file or module and find its :class:`runyard.Definitions`.

A module may expose one ``Definitions`` object (any name) or, for small scripts, jobs, schedules
and sensors at module level, which are gathered into one. ``attribute`` picks a specific object.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from typing import Any

from ..errors import DefinitionError, DefinitionsLoadError
from ..storage.records import CodePointer


def code_pointer_for(python_file: str | None = None, module: str | None = None,
                     attribute: str | None = None, working_directory: str | None = None) -> CodePointer:
    if bool(python_file) == bool(module):
        raise DefinitionsLoadError("give exactly one of a python file (-f) or a module (-m)")
    if python_file:
        path = os.path.abspath(python_file)
        return CodePointer(python_file=path, attribute=attribute,
                           working_directory=working_directory or os.path.dirname(path))
    return CodePointer(module=module, attribute=attribute,
                       working_directory=os.path.abspath(working_directory or os.getcwd()))


_RUNYARD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _user_traceback(exc: BaseException, path_hint: str | None) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop import machinery and runyard's own frames; keep the user's. A SyntaxError has no user
    # frame: its file, line and caret are in the exception itself.
    keep = [f for f in frames if "importlib" not in f.filename and not f.filename.startswith(_RUNYARD_DIR)]
    lines = traceback.format_list(keep) + traceback.format_exception_only(type(exc), exc)
    return ("Traceback (most recent call last):\n" if keep else "") + "".join(lines)


def _import(pointer: CodePointer) -> Any:
    wd = pointer.working_directory
    if wd and wd not in sys.path:
        sys.path.insert(0, wd)
    if pointer.python_file:
        path = pointer.python_file
        if not os.path.isfile(path):
            raise DefinitionsLoadError(f"definitions file not found: {path}")
        name = "runyard_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == path:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise DefinitionsLoadError(f"cannot import {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(name, None)
            if not isinstance(exc, (Exception, SystemExit)):  # Ctrl-C, run termination: not the user's bug
                raise
            if isinstance(exc, DefinitionError):
                raise DefinitionsLoadError(f"invalid definitions in {path}: {exc}",
                                           _user_traceback(exc, path)) from None
            tb = _user_traceback(exc, path)
            raise DefinitionsLoadError(
                f"error while importing {path}: {type(exc).__name__}: {exc}", tb) from None
        return module
    try:
        return importlib.import_module(pointer.module)
    except ModuleNotFoundError as exc:
        if exc.name == pointer.module or (pointer.module or "").startswith(f"{exc.name}."):
            raise DefinitionsLoadError(f"module '{pointer.module}' not found (working directory "
                                       f"{wd})") from None
        raise DefinitionsLoadError(f"error while importing module {pointer.module}: {exc}",
                                   _user_traceback(exc, None)) from None
    except DefinitionError as exc:
        raise DefinitionsLoadError(f"invalid definitions in module {pointer.module}: {exc}",
                                   _user_traceback(exc, None)) from None
    except Exception as exc:
        raise DefinitionsLoadError(f"error while importing module {pointer.module}: "
                                   f"{type(exc).__name__}: {exc}", _user_traceback(exc, None)) from None


def load_definitions(pointer: CodePointer):
    from ..definitions.definitions import Definitions
    from ..definitions.job import GraphDefinition, JobDefinition
    from ..definitions.schedules import ScheduleDefinition
    from ..definitions.sensors import SensorDefinition

    module = _import(pointer)
    where = pointer.describe()
    if pointer.attribute:
        if not hasattr(module, pointer.attribute):
            raise DefinitionsLoadError(f"{where} has no attribute '{pointer.attribute}'")
        obj = getattr(module, pointer.attribute)
        if isinstance(obj, JobDefinition):
            return _wrap(Definitions, jobs=[obj])
        if not isinstance(obj, Definitions):
            raise DefinitionsLoadError(f"{where}:{pointer.attribute} is not a Definitions object")
        return obj
    found = [v for v in vars(module).values() if isinstance(v, Definitions)]
    if len(found) > 1:
        raise DefinitionsLoadError(f"{where} defines {len(found)} Definitions objects; pick one with "
                                   "an attribute (-a NAME)")
    if found:
        return found[0]
    values = list(vars(module).values())
    jobs = [v for v in values if isinstance(v, JobDefinition)]
    if not jobs and any(isinstance(v, GraphDefinition) for v in values):
        raise DefinitionsLoadError(f"{where} defines graphs but no jobs; turn one into a job with "
                                   "graph.to_job()")
    return _wrap(Definitions, jobs=jobs,
                 schedules=[v for v in values if isinstance(v, ScheduleDefinition)],
                 sensors=[v for v in values if isinstance(v, SensorDefinition)])


def _wrap(cls, **kwargs):
    try:
        return cls(**kwargs)
    except DefinitionError as exc:
        raise DefinitionsLoadError(f"invalid definitions: {exc}") from None
