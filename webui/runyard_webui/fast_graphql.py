"""Two shortcuts that keep GraphQL answers cheap without changing a single answer.

- :class:`DocumentCache`: a page asks the same few queries over and over (the runs list, a run's
  steps), so a query text is parsed and checked against the schema once, then kept. Only the
  request-dependent rule (:func:`.limits.query_limits_rule`, which reads the request's variables)
  runs on every request — and on a text seen for the first time it runs before the schema rules,
  so an abusive query is still refused before it costs anything.
- :class:`LeafFastExecutionContext`: most fields of an answer are plain leaves read off a record
  (``runId``, ``status``, a tag's ``key``...). graphql-core builds a resolve-info object, reads the
  field's arguments and walks the completion steps for each; for a leaf without arguments whose
  resolver is graphene's default one, or one of ours marked :func:`.schema.plain.info_free` (it
  reads only its root), that is the same as reading the value and serializing it, which is what
  this does. Anything else — other resolvers, arguments, a resolver that raises, a null where the
  schema forbids one, a value the scalar refuses, middleware — goes the standard way, errors
  included.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
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
        #: (query, variables as JSON) -> the request rule's errors, for documents kept above
        self._verdicts: OrderedDict[tuple[str, str], tuple[GraphQLError, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def document(self, query: str, max_tokens: int, request_rule: Callable[[], type],
                 variables: dict[str, Any] | None = None) -> tuple[DocumentNode, list[GraphQLError]]:
        """The document of ``query`` and the errors that refuse it (empty: run it). ``request_rule``
        makes the request-dependent rule, which depends on ``variables`` only: its verdict on a kept
        text is kept too, per small set of variables (a page polling with the same ones is checked
        once). Raises :class:`GraphQLError` for a syntax error or more than ``max_tokens`` tokens."""
        verdict_key = _verdict_key(query, variables)
        with self._lock:
            document = self._documents.get(query)
            if document is not None:
                self._documents.move_to_end(query)
                verdict = self._verdicts.get(verdict_key) if verdict_key is not None else None
                if verdict is not None:
                    self._verdicts.move_to_end(verdict_key)
                    return document, list(verdict)
        if document is not None:
            errors = validate(self.schema, document, [request_rule()])
            self._keep_verdict(verdict_key, errors)
            return document, errors
        document = parse(query, max_tokens=max_tokens)
        errors = validate(self.schema, document, [request_rule()])
        if errors:
            return document, errors
        # GraphQL's rules, with ID and String variables interchangeable (schema/rules.py)
        limit_errors = errors
        errors = validate(self.schema, document, VALIDATION_RULES)
        if not errors:
            with self._lock:
                self._documents[query] = document
                while len(self._documents) > self.size:
                    self._documents.popitem(last=False)
            self._keep_verdict(verdict_key, limit_errors)
        return document, errors

    def _keep_verdict(self, key: tuple[str, str] | None, errors: list[GraphQLError]) -> None:
        if key is None:
            return
        with self._lock:
            self._verdicts[key] = tuple(errors)
            while len(self._verdicts) > 4 * self.size:
                self._verdicts.popitem(last=False)


#: variables longer than this (as JSON) are checked on every request rather than kept as a key
_VERDICT_KEY_CHARS = 512


def _verdict_key(query: str, variables: dict[str, Any] | None) -> tuple[str, str] | None:
    if not variables:
        return query, ""
    try:
        text = json.dumps(variables, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return (query, text) if len(text) <= _VERDICT_KEY_CHARS else None


# id(field) -> (field, its plain-leaf facts or None): GraphQLField is not hashable; the field is
# kept in the entry so an id reused by another schema's field is never taken for it
_PLAIN: dict[int, tuple[GraphQLField, tuple[Callable[[Any], Any], Any, bool] | None]] = {}


def _read(attname: str, default: Any, source: Any) -> Any:
    return source.get(attname, default) if isinstance(source, dict) else getattr(source, attname, default)


def _call(resolve: Callable[[Any, Any], Any], source: Any) -> Any:
    return resolve(source, None)


def _plain_leaf(field: GraphQLField) -> tuple[Callable[[Any], Any], Any, bool] | None:
    """(value getter, leaf type, non-null) when ``field`` is a plain leaf: a leaf without arguments
    read by graphene's default resolver or by one marked :func:`.schema.plain.info_free`; else None."""
    entry = _PLAIN.get(id(field))
    if entry is not None and entry[0] is field:
        return entry[1]
    plain = getter = None
    resolve = field.resolve
    if (isinstance(resolve, partial) and resolve.func in _DEFAULT_RESOLVERS and len(resolve.args) == 2
            and not resolve.keywords):
        getter = partial(_read, *resolve.args)
    elif getattr(resolve, "info_free", False):
        getter = partial(_call, resolve)
    if getter is not None and not field.args:
        kind, non_null = field.type, isinstance(field.type, GraphQLNonNull)
        if non_null:
            kind = kind.of_type
        if is_leaf_type(kind):
            plain = (getter, kind, non_null)
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
        getter, leaf, non_null = plain
        try:
            value = getter(source)
        except Exception:  # noqa: BLE001 - the standard path reports it, located
            return _NOT_PLAIN
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
