"""The GraphQL API served at ``/graphql`` (graphene 3). See docs/webui.md for the schema and examples.

Resolvers reach the :class:`~runyard_webui.context.WebContext` through ``info.context["web"]``.
"""

from __future__ import annotations

import graphene

from .mutations import Mutation
from .query import Query


def build_schema() -> graphene.Schema:
    return graphene.Schema(query=Query, mutation=Mutation)


__all__ = ["build_schema"]
