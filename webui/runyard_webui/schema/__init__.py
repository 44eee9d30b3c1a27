"""The GraphQL API served at ``/graphql`` (graphene 3). See docs/webui.md for the schema and examples.

Resolvers reach the :class:`~runyard_webui.context.WebContext` through ``info.context["web"]``.
"""

from __future__ import annotations

from .deferred_init import install

install()  # before the first ObjectType is defined (below, in the modules this imports)

import graphene  # noqa: E402

from . import dagster_types  # noqa: E402
from .mutations import Mutation  # noqa: E402
from .query import Query  # noqa: E402
from .rules import VALIDATION_RULES  # noqa: E402


def build_schema() -> graphene.Schema:
    # Dagster's answer types reached only through an interface are listed (docs/api.md)
    return graphene.Schema(query=Query, mutation=Mutation, types=dagster_types.TYPES)


__all__ = ["VALIDATION_RULES", "build_schema"]
