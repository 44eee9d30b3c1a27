"""graphene gives every ObjectType class the ``__init__``, ``__eq__`` and ``__repr__`` of a dataclass it
builds with :func:`dataclasses.make_dataclass` as the class is defined. That costs about a millisecond
per type (the dataclass machinery generates and compiles source for each), ~90 ms for this schema's
types, paid by every ``runyard webui`` before it answers, while most types are never instantiated in
Python at all: resolvers return records and dicts.

:func:`install` (called before any type is defined, in :mod:`runyard_webui.schema`) makes graphene
get stand-ins instead: the first call of one of the three methods on an instance builds the real
dataclass — the same arguments graphene passed, so the same behaviour, errors included — puts its
methods where graphene put the stand-ins, and answers with them. Later calls go straight to the
dataclass methods.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

_METHODS = ("__init__", "__eq__", "__repr__")
_lock = threading.Lock()


def _deferred_dataclass(cls_name: str, fields: Any, bases: tuple = (), **kwargs: Any) -> type:
    built: list[type] = []

    def real() -> type:
        with _lock:
            if not built:
                built.append(dataclasses.make_dataclass(cls_name, fields, bases=bases, **kwargs))
            return built[0]

    def stand_in(attr: str):
        def method(self, *args: Any, **kw: Any) -> Any:
            target = getattr(real(), attr)
            for klass in type(self).__mro__:  # the class graphene copied the stand-in onto
                if klass.__dict__.get(attr) is method:
                    setattr(klass, attr, target)
            return target(self, *args, **kw)

        method.__name__ = method.__qualname__ = attr
        return method

    return type(cls_name, (), {attr: stand_in(attr) for attr in _METHODS})


def install() -> None:
    """Make graphene's ObjectType classes defined from now on get deferred dataclass methods."""
    from graphene.types import objecttype

    objecttype.make_dataclass = _deferred_dataclass
