"""The rules ``/graphql`` checks a query with: GraphQL's specified rules, except that a variable of
type ``ID`` may be used where a ``String`` is expected and the other way round.

Why: ``terminateRun(runId:)`` and ``terminateRuns(runIds:)`` are shared by runyard's API and
Dagster's (docs/api.md). Dagster's client declares those variables ``String!``, runyard's documented
examples and pages ``ID!``, and GraphQL's "variables in allowed position" rule holds the two apart
although both travel as the same JSON string. With this rule both clients' documents are valid, and
nothing else changes: a variable is still coerced by the type it is declared with, and every other
mismatch (``Int`` for ``String``, a nullable variable where a value is required...) is refused as
before, with the same message.
"""

from __future__ import annotations

from graphql import (
    GraphQLError,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLString,
    NullValueNode,
    ValidationRule,
    VariablesInAllowedPositionRule,
    is_non_null_type,
    is_type_sub_type_of,
    specified_rules,
)
from graphql.pyutils import Undefined
from graphql.utilities import type_from_ast


def _id_as_string(kind):
    """``kind`` with ``ID`` read as ``String`` at any depth of list and non-null wrappers."""
    if isinstance(kind, GraphQLNonNull):
        return GraphQLNonNull(_id_as_string(kind.of_type))
    if isinstance(kind, GraphQLList):
        return GraphQLList(_id_as_string(kind.of_type))
    return GraphQLString if kind is GraphQLID else kind


def _allowed(schema, var_type, var_default, location_type, location_default) -> bool:
    """May a variable of ``var_type`` (with ``var_default``) fill a position of ``location_type``?"""
    if is_non_null_type(location_type) and not is_non_null_type(var_type):
        # a nullable variable fits a required position only when a default stands in for null
        var_has_default = var_default is not None and not isinstance(var_default, NullValueNode)
        if not var_has_default and location_default is Undefined:
            return False
        location_type = location_type.of_type
    return is_type_sub_type_of(schema, _id_as_string(var_type), _id_as_string(location_type))


class VariablesInAllowedPositionIdStringRule(ValidationRule):
    """GraphQL's "variables in allowed position", with ``ID`` and ``String`` interchangeable."""

    def __init__(self, context):
        super().__init__(context)
        self.definitions: dict = {}

    def enter_operation_definition(self, *_args):
        self.definitions = {}

    def enter_variable_definition(self, node, *_args):
        self.definitions[node.variable.name.value] = node

    def leave_operation_definition(self, operation, *_args):
        schema = self.context.schema
        for usage in self.context.get_recursive_variable_usages(operation):
            name = usage.node.name.value
            definition = self.definitions.get(name)
            if definition is None or usage.type is None:
                continue  # an undefined variable: another rule reports it
            var_type = type_from_ast(schema, definition.type)
            if var_type is None:
                continue  # an unknown type: another rule reports it
            if not _allowed(schema, var_type, definition.default_value, usage.type, usage.default_value):
                self.report_error(GraphQLError(
                    f"Variable '${name}' of type '{var_type}' used in position expecting type '{usage.type}'.",
                    [definition, usage.node]))


#: what ``/graphql`` validates each query with (fast_graphql.DocumentCache, graphql_view)
VALIDATION_RULES = tuple(VariablesInAllowedPositionIdStringRule if rule is VariablesInAllowedPositionRule else rule
                         for rule in specified_rules)
