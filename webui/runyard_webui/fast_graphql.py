"""Two shortcuts that keep GraphQL answers cheap without changing a single answer.

- :class:`DocumentCache`: a page asks the same few queries over and over (the runs list, a run's
  steps), so a query text is parsed and checked against the schema once, then kept. Only the
  request-dependent rule (:func:`.limits.query_limits_rule`, which reads the request's variables)
  runs on every request — and on a text seen for the first time it runs before the schema rules,
  so an abusive query is still refused before it costs anything.
- :class:`LeafFastExecutionContext`: most fields of an answer are plain leaves read off a record
  (``runId``, ``status``, a tag's ``key``, a run's ``stepKeysToExecute``...). graphql-core builds
  a resolve-info object, reads the field's arguments and walks the completion steps for each; for
  a leaf or a list of leaves without arguments whose resolver is graphene's default one, or one of
  ours marked :func:`.schema.plain.info_free` (it reads only its root), that is the same as reading
  the value and serializing it, which is what this does. A list of objects (the runs of a page, a
  run's tags) is completed item by item straight into the objects' fields. Anything else — other
  resolvers, arguments, a resolver that raises, a null where the schema forbids one, a value the
  scalar refuses, middleware — goes the standard way, errors included.
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
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    is_leaf_type,
    located_error,
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


#: what :func:`_plain_leaf` knows of a plain field: (value getter, serializer, non-null); the
#: serializer returns the serialized value or _NOT_PLAIN
PlainFacts = tuple[Callable[[Any], Any], Callable[[Any], Any], bool]

# id(field) -> (field, its plain-leaf facts or None): GraphQLField is not hashable; the field is
# kept in the entry so an id reused by another schema's field is never taken for it
_PLAIN: dict[int, tuple[GraphQLField, PlainFacts | None]] = {}

_NOT_PLAIN = object()


def _read(attname: str, default: Any, source: Any) -> Any:
    return source.get(attname, default) if isinstance(source, dict) else getattr(source, attname, default)


def _call(resolve: Callable[[Any, Any], Any], source: Any) -> Any:
    return resolve(source, None)


def _serialize_leaf(leaf: Any, value: Any) -> Any:
    """``leaf.serialize(value)``, or _NOT_PLAIN where graphql-core's completion would report an
    error: an exception as the value, a value the scalar refuses, or one it turns into null."""
    if isinstance(value, Exception):
        return _NOT_PLAIN
    try:
        serialized = leaf.serialize(value)
    except Exception:  # noqa: BLE001 - the standard path reports it, located
        return _NOT_PLAIN
    return _NOT_PLAIN if serialized is None or serialized is Undefined else serialized


def _serialize_leaves(leaf: Any, items_non_null: bool, value: Any) -> Any:
    """A list of leaves serialized item by item, or _NOT_PLAIN (the standard path) for anything
    but a list or tuple, or when an item would be an error: a null where the schema forbids one, or
    one :func:`_serialize_leaf` refuses."""
    if not isinstance(value, list | tuple):
        return _NOT_PLAIN
    out = []
    for item in value:
        if item is None or item is Undefined:
            if items_non_null:
                return _NOT_PLAIN
            out.append(None)
            continue
        serialized = _serialize_leaf(leaf, item)
        if serialized is _NOT_PLAIN:
            return _NOT_PLAIN
        out.append(serialized)
    return out


def _plain_leaf(field: GraphQLField) -> PlainFacts | None:
    """The facts of ``field`` when it is plain: a leaf or a list of leaves, without arguments, read
    by graphene's default resolver or by one marked :func:`.schema.plain.info_free`; else None."""
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
            plain = (getter, partial(_serialize_leaf, kind), non_null)
        elif isinstance(kind, GraphQLList):
            item, items_non_null = kind.of_type, isinstance(kind.of_type, GraphQLNonNull)
            if items_non_null:
                item = item.of_type
            if is_leaf_type(item):
                plain = (getter, partial(_serialize_leaves, item, items_non_null), non_null)
    _PLAIN[id(field)] = (field, plain)
    return plain


def _plain_value(plain: PlainFacts, source: Any) -> Any:
    """The serialized value of a plain field (its :func:`_plain_leaf` facts) on ``source``, or
    _NOT_PLAIN for the standard path, which reports what went wrong where."""
    getter, serialize, non_null = plain
    try:
        value = getter(source)
    except Exception:  # noqa: BLE001 - the standard path reports it, located
        return _NOT_PLAIN
    if value is None or value is Undefined:
        return _NOT_PLAIN if non_null else None  # the standard path reports a forbidden null
    return serialize(value)


class LeafFastExecutionContext(ExecutionContext):
    """graphql-core's execution, with plain leaves read directly (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # id(fields) -> (fields, their plan): graphql-core collects an object's selection once per
        # request and hands the same dict for every item of a list (``collect_subfields``), so each
        # field is looked up once per request, not once per item. The dict is kept in the entry so
        # an id reused by another dict is never taken for it.
        self._plans: dict[int, tuple[dict[str, list[FieldNode]], list[tuple[str, list[FieldNode], Any]]]] = {}

    def _plan(self, parent_type: GraphQLObjectType,
              fields: dict[str, list[FieldNode]]) -> list[tuple[str, list[FieldNode], Any]]:
        """(response name, field nodes, plain-leaf facts or None) for each field of ``fields``."""
        entry = self._plans.get(id(fields))
        if entry is not None and entry[0] is fields:
            return entry[1]
        plan = []
        for response_name, field_nodes in fields.items():
            plain = None
            if not field_nodes[0].arguments:
                field = get_field_def(self.schema, parent_type, field_nodes[0])
                plain = None if field is None else _plain_leaf(field)
            plan.append((response_name, field_nodes, plain))
        self._plans[id(fields)] = (fields, plan)
        return plan

    def execute_fields(self, parent_type, source_value, path, fields):  # noqa: ANN001, ANN201
        if self.middleware_manager is not None:
            return super().execute_fields(parent_type, source_value, path, fields)
        results: dict[str, Any] = {}
        awaitable = False
        for response_name, field_nodes, plain in self._plan(parent_type, fields):
            # a plain leaf needs no Path (only errors use it, and a plain read cannot fail)
            result = _NOT_PLAIN if plain is None else _plain_value(plain, source_value)
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

    def complete_list_value(self, return_type, field_nodes, info, path, result):  # noqa: ANN001, ANN201
        """A list of objects completed item by item without graphql-core's per-item dispatch
        (``complete_value`` -> ``complete_object_value`` -> ``execute_fields``): for an object type
        without ``is_type_of`` (none of the schema's has one) and items that are neither null, nor
        errors, nor awaitables, that dispatch ends in ``execute_fields`` on the same selection.
        Anything else goes the standard way; an item's error is located and handled as there."""
        item_type = return_type.of_type
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if (self.middleware_manager is not None or not isinstance(result, list | tuple)
                or not isinstance(object_type, GraphQLObjectType) or object_type.is_type_of is not None
                or any(item is None or item is Undefined or isinstance(item, Exception) or self.is_awaitable(item)
                       for item in result)):
            return super().complete_list_value(return_type, field_nodes, info, path, result)
        sub_fields = self.collect_subfields(object_type, field_nodes)
        completed: list[Any] = []
        awaitable = False
        for index, item in enumerate(result):
            item_path = path.add_key(index, None)
            try:
                value = self.execute_fields(object_type, item, item_path, sub_fields)
            except Exception as raw_error:  # noqa: BLE001 - what complete_list_value does with it
                self.handle_field_error(located_error(raw_error, field_nodes, item_path.as_list()), item_type,
                                        item_path)
                value = None
            awaitable = awaitable or self.is_awaitable(value)
            completed.append(value)
        if not awaitable:
            return completed
        return self._gather_list(completed, field_nodes, item_type, path)

    async def _gather_list(self, items: list[Any], field_nodes: list[FieldNode], item_type: Any,
                           path: Path) -> list[Any]:
        """``items`` with every awaitable awaited, an error handled as complete_list_value does."""
        for index, value in enumerate(items):
            if self.is_awaitable(value):
                try:
                    items[index] = await value
                except Exception as raw_error:  # noqa: BLE001
                    item_path = path.add_key(index, None)
                    self.handle_field_error(located_error(raw_error, field_nodes, item_path.as_list()),
                                            item_type, item_path)
                    items[index] = None
        return items

    async def _gather(self, results: dict[str, Any]) -> dict[str, Any]:
        """The same map with every awaitable awaited (none of runyard's resolvers is async today)."""
        for name, value in results.items():
            if self.is_awaitable(value):
                results[name] = await value
        return results
