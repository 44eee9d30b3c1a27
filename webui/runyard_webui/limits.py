"""Bounds on what one GraphQL request may ask for, so one client cannot take the web UI down: query
depth, aliases, fields (fragments expanded) and cost, at most one long poll per request, JSON
variables nesting, and a process-wide cap on long polls waiting at once. The settings are in
:class:`~runyard_webui.settings.WebuiSettings`; docs/webui.md lists them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef

if TYPE_CHECKING:  # pragma: no cover
    from .settings import WebuiSettings

#: ``extensions.code`` of a query refused for its size
TOO_COMPLEX = "TOO_COMPLEX"
#: the long-polling field and its argument
LONG_POLL_FIELD, LONG_POLL_ARG = "runEvents", "waitSeconds"

_META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef, "__typename": TypeNameMetaFieldDef}


class _Refused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def query_limits_rule(settings: WebuiSettings, variables: dict[str, Any] | None) -> type[ValidationRule]:
    """A validation rule class bound to this request's ``variables`` (a ``limit`` or ``waitSeconds``
    given as a variable counts with its value)."""
    return type("QueryLimitsRule", (QueryLimitsRule,), {"settings": settings, "variables": variables or {}})


class QueryLimitsRule(ValidationRule):
    """Walks each operation with its fragments expanded and refuses it, before anything executes,
    when it is deeper, wider, more aliased or costlier than the settings allow, or asks for more than
    one long poll. The walk stops at the first limit passed, so a fragment that doubles at every
    level costs no more than ``max_fields`` steps."""

    settings: WebuiSettings
    variables: dict[str, Any]

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> Any:
        root = self.context.schema.get_root_type(node.operation)
        if root is None:
            return self.SKIP
        try:
            self._walk(node, root)
        except _Refused as refused:
            self.report_error(GraphQLError(refused.message, node, extensions={"code": TOO_COMPLEX}))
        return self.SKIP

    def _argument(self, field: FieldNode, name: str) -> tuple[bool, Any]:
        """(given, value) of argument ``name``: a literal, or a variable's value."""
        for arg in field.arguments or ():
            if arg.name.value == name:
                value = arg.value
                if isinstance(value, VariableNode):
                    return value.name.value in self.variables, self.variables.get(value.name.value)
                if isinstance(value, IntValueNode):
                    return True, int(value.value)
                return True, getattr(value, "value", None)
        return False, None

    def _multiplier(self, field: FieldNode, definition: Any) -> int:
        """How many items a field with a ``limit`` argument may return (its default when not given)."""
        arg = definition.args.get("limit") if definition is not None else None
        if arg is None:
            return 1
        given, value = self._argument(field, "limit")
        if not given:
            value = arg.default_value
        try:
            return max(1, int(value))
        except (TypeError, ValueError, OverflowError):
            return 1

    def _walk(self, operation: OperationDefinitionNode, root: GraphQLObjectType) -> None:
        s = self.settings
        fields = aliases = cost = long_polls = 0
        # (selection set, its parent type, depth of its fields, cost multiplier, fragments on the path)
        stack: list[tuple[Any, Any, int, int, frozenset[str]]] = [(operation.selection_set, root, 1, 1, frozenset())]
        while stack:
            selection_set, parent, depth, multiplier, path = stack.pop()
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    fields += 1
                    if selection.alias is not None:
                        aliases += 1
                    name = selection.name.value
                    if depth > s.max_query_depth:
                        raise _Refused(f"the query is too deep: more than {s.max_query_depth} levels of fields "
                                       f"(webui.max_query_depth) at '{name}'")
                    if fields > s.max_fields:
                        raise _Refused(f"the query has more than {s.max_fields} fields, fragments expanded "
                                       "(webui.max_fields)")
                    if aliases > s.max_aliases:
                        raise _Refused(f"the query has more than {s.max_aliases} aliases (webui.max_aliases)")
                    definition = _META_FIELDS.get(name) or (
                        parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None)
                    if name == LONG_POLL_FIELD and self._is_long_poll(selection):
                        long_polls += 1
                        if long_polls > 1:
                            raise _Refused(f"at most one long-polling field ({LONG_POLL_FIELD} with "
                                           f"{LONG_POLL_ARG}) per request")
                    cost += multiplier
                    if cost > s.max_query_cost:
                        raise _Refused(f"the query's estimated cost passes {s.max_query_cost} "
                                       "(webui.max_query_cost): ask for fewer items (a smaller limit) or fields")
                    if selection.selection_set is not None:
                        child = get_named_type(definition.type) if definition is not None else None
                        stack.append((selection.selection_set, child, depth + 1,
                                      multiplier * self._multiplier(selection, definition), path))
                elif isinstance(selection, InlineFragmentNode):
                    cond = selection.type_condition
                    child = self.context.schema.get_type(cond.name.value) if cond is not None else parent
                    stack.append((selection.selection_set, child, depth, multiplier, path))
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.context.get_fragment(name)
                    if fragment is None or name in path:  # unknown or cyclic: other rules report it
                        continue
                    child = self.context.schema.get_type(fragment.type_condition.name.value)
                    stack.append((fragment.selection_set, child, depth, multiplier, path | {name}))

    def _is_long_poll(self, field: FieldNode) -> bool:
        given, value = self._argument(field, LONG_POLL_ARG)
        if not given:
            return False
        try:
            return float(value) > 0
        except (TypeError, ValueError):
            return True  # not a number: execution refuses it, but it must not slip past this count


def json_depth(value: Any, limit: int) -> int | None:
    """The nesting depth of parsed JSON ``value`` when it passes ``limit`` (else None); iterative,
    so a hostile document cannot exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


class LongPollSlots:
    """At most ``slots`` long polls wait at once in this process, so long polls can never hold every
    request thread: ``/healthz``, the pages and short queries always find one. A long poll that finds
    no free slot does not wait: it answers at once with the current state, and the client asks again."""

    def __init__(self, slots: int):
        self._slots = threading.BoundedSemaphore(slots) if slots > 0 else None

    @contextmanager
    def wait_allowed(self, wait_seconds: float) -> Iterator[float]:
        """The seconds this long poll may wait: ``wait_seconds`` with a slot, 0 without one."""
        if wait_seconds <= 0 or self._slots is None or not self._slots.acquire(blocking=False):
            yield 0.0
            return
        try:
            yield wait_seconds
        finally:
            self._slots.release()
