"""A mark for resolvers the web UI may call without graphql-core's per-field machinery."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def info_free(resolver: F) -> F:
    """Mark a leaf field's resolver that reads only its root, never ``info``, and has no side
    effects. :class:`runyard_webui.fast_graphql.LeafFastExecutionContext` then calls it as
    ``resolver(root, None)`` and serializes the result, like a plain attribute; anything unusual (it
    raises, returns a null the schema forbids, or a value the scalar refuses) goes the standard way,
    which calls it again with ``info`` and reports the error where it belongs."""
    resolver.info_free = True
    return resolver
