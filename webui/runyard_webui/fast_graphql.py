"""Two shortcuts that keep GraphQL answers cheap without changing a single answer.

- :class:`DocumentCache`: a page asks the same few queries over and over (the runs list, a run's
  steps), so a query text is parsed and checked against the schema once, then kept. Only the
  request-dependent rule (:func:`.limits.query_limits_rule`, which reads the request's variables)
  runs on every request — and on a text seen for the first time it runs before the schema rules,
  so an abusive query is still refused before it costs anything.
- :class:`LeafFastExecutionContext`: most fields of an answer are plain leaves read off a record
  (``runId``, ``status``, a tag's ``key``...). graphql-core builds a resolve-info object, reads the
  field's arguments and walks the completion steps for each; for a leaf with graphene's default
  resolver and no arguments that is the same as reading the attribute and serializing it, which is
  what this does. Anything else — a resolver of our own, arguments, a null where the schema forbids
  one, a value the scalar refuses, middleware — goes the standard way, errors included.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import partial
from typing import Any

from graphene.types.resolver import attr_resolver, dict_or_attr_resolver, dict_resolver
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLSchema,
    is_leaf_type,
    parse,
    validate,
)
from graphql.execution import ExecutionContext
from graphql.execution.execute import get_field_def
from graphql.pyutils import Path, Undefined

from .schema.rules import VALIDATION_RULES

_DEFAULT_RESOLVERS = (dict_or_attr_resolver, attr_resolver, dict_resolver)


class DocumentCache:
    """Query text -> its parsed document, once it passed the schema's rules. At most ``size``
    texts, the least recently used dropped first; shared by the request threads."""

    def __init__(self, schema: GraphQLSchema, size: int = 256):
        self.schema = schema
        self.size = size
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()
        self._lock = threading.Lock()

    def document(self, query: str, max_tokens: int, request_rule: type) -> tuple[DocumentNode, list[GraphQLError]]:
        """The document of ``query`` and the errors that refuse it (empty: run it). Raises
        :class:`GraphQLError` for a syntax error or more than ``max_tokens`` tokens."""
        with self._lock:
            document = self._documents.get(query)
            if document is not None:
                self._documents.move_to_end(query)
        if document is not None:
            return document, validate(self.schema, document, [request_rule])
        document = parse(query, max_tokens=max_tokens)
        errors = validate(self.schema, document, [request_rule])
        if errors:
            return document, errors
        # GraphQL's rules, with ID and String variables interchangeable (schema/rules.py)
        errors = validate(self.schema, document, VALIDATION_RULES)
        if not errors:
            with self._lock:
                self._documents[query] = document
                while len(self._documents) > self.size:
                    self._documents.popitem(last=False)
        return document, errors


# id(field) -> (field, its plain-leaf facts or None): GraphQLField is not hashable; the field is
# kept in the entry so an id reused by another schema's field is never taken for it
_PLAIN: dict[int, tuple[GraphQLField, tuple[str, Any, Any, bool] | None]] = {}


def _plain_leaf(field: GraphQLField) -> tuple[str, Any, Any, bool] | None:
    """(attribute name, default, leaf type, non-null) when ``field`` is a plain leaf; else None."""
    entry = _PLAIN.get(id(field))
    if entry is not None and entry[0] is field:
        return entry[1]
    plain = None
    resolve = field.resolve
    if (isinstance(resolve, partial) and resolve.func in _DEFAULT_RESOLVERS and len(resolve.args) == 2
            and not resolve.keywords and not field.args):
        kind, non_null = field.type, isinstance(field.type, GraphQLNonNull)
        if non_null:
            kind = kind.of_type
        if is_leaf_type(kind):
            plain = (resolve.args[0], resolve.args[1], kind, non_null)
    _PLAIN[id(field)] = (field, plain)
    return plain


_NOT_PLAIN = object()


class LeafFastExecutionContext(ExecutionContext):
    """graphql-core's execution, with plain leaves read directly (see the module docstring)."""

    def _plain_value(self, parent_type, source, field_nodes) -> Any:  # noqa: ANN001
        """The serialized value of a plain leaf field, or _NOT_PLAIN for the standard path."""
        if field_nodes[0].arguments:
            return _NOT_PLAIN
        field = get_field_def(self.schema, parent_type, field_nodes[0])
        plain = None if field is None else _plain_leaf(field)
        if plain is None:
            return _NOT_PLAIN
        attname, default, leaf, non_null = plain
        value = source.get(attname, default) if isinstance(source, dict) else getattr(source, attname, default)
        if value is None or value is Undefined:
            return _NOT_PLAIN if non_null else None  # the standard path reports a forbidden null
        try:
            serialized = leaf.serialize(value)
        except Exception:  # noqa: BLE001 - the standard path reports it, located
            return _NOT_PLAIN
        return _NOT_PLAIN if serialized is Undefined else serialized

    def execute_fields(self, parent_type, source_value, path, fields):  # noqa: ANN001, ANN201
        if self.middleware_manager is not None:
            return super().execute_fields(parent_type, source_value, path, fields)
        results: dict[str, Any] = {}
        awaitable = False
        for response_name, field_nodes in fields.items():
            # a plain leaf needs no Path (only errors use it, and a plain read cannot fail)
            result = self._plain_value(parent_type, source_value, field_nodes)
            if result is _NOT_PLAIN:
                result = super().execute_field(parent_type, source_value, field_nodes,
                                               Path(path, response_name, parent_type.name))
                if result is Undefined:
                    continue
                awaitable = awaitable or self.is_awaitable(result)
            results[response_name] = result
        if not awaitable:
            return results
        return self._gather(results)

    async def _gather(self, results: dict[str, Any]) -> dict[str, Any]:
        """The same map with every awaitable awaited (none of runyard's resolvers is async today)."""
        for name, value in results.items():
            if self.is_awaitable(value):
                results[name] = await value
        return results
