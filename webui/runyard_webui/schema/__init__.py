"""The GraphQL API served at ``/graphql`` (graphene 3). See docs/webui.md for the schema and examples.

Resolvers reach the :class:`~runyard_webui.context.WebContext` through ``info.context["web"]``.
"""

from __future__ import annotations

import graphene

from . import dagster_types
from .mutations import Mutation
from .query import Query
from .rules import VALIDATION_RULES


def build_schema() -> graphene.Schema:
    # Dagster's answer types reached only through an interface are listed (docs/api.md)
    return graphene.Schema(query=Query, mutation=Mutation, types=dagster_types.TYPES)


__all__ = ["VALIDATION_RULES", "build_schema"]
