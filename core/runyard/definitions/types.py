"""Runtime checks of op input and output values against their annotations.

Only what can be checked cheaply and surely is checked: plain classes, ``None``, ``Any``, unions
and the container origin of generics (``list[int]`` checks ``list``). Anything else passes.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

NoneType = type(None)
inspect_empty = inspect.Parameter.empty


def describe_type(annotation: Any) -> str:
    if annotation is inspect_empty or annotation is Any:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def type_matches(value: Any, annotation: Any) -> bool:
    if annotation is inspect_empty or annotation is Any or annotation is typing.Any:
        return True
    if annotation is None or annotation is NoneType:
        return value is None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(type_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin is not None:
        return isinstance(origin, type) and isinstance(value, origin)
    if isinstance(annotation, type):
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return True
        return isinstance(value, annotation)
    return True
