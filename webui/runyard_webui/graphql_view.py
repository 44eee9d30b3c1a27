"""The ``/graphql`` endpoint: graphql-server's Flask view with runyard's context, the query limits of
:mod:`.limits`, the mutation middlewares (role check, read-only, audit: :mod:`.audit`), and JSON
answers in GraphQL's error format (4xx) for every request it cannot run — a body that is not one
JSON object, a batch, nesting too deep, a body too large — where the stock view answers plain text
or an HTML 500."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request, url_for
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType
from graphql.execution import MiddlewareManager
from graphql_server.exceptions import GraphQLValidationError
from graphql_server.flask.views import FlaskHTTPRequestAdapter, GraphQLView
from graphql_server.http.exceptions import HTTPException as GraphQLHTTPException
from werkzeug.exceptions import HTTPException

from .audit import mutation_middleware
from .fast_graphql import DocumentCache, LeafFastExecutionContext
from .limits import json_depth, query_limits_rule
from .schema.rules import VALIDATION_RULES
from .security import GRAPHIQL_CDN, csp_nonce

if TYPE_CHECKING:  # pragma: no cover
    from .context import WebContext


class _RequestAdapter(FlaskHTTPRequestAdapter):
    @property
    def body(self) -> str:
        try:
            return self.request.get_data(cache=True).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GraphQLHTTPException(400, f"the request body is not UTF-8 (byte {exc.start})") from exc


def _error(status: int, message: str) -> Response:
    response = jsonify(errors=[{"message": message}])
    response.status_code = status
    return response


class RunyardGraphQLView(GraphQLView):
    request_adapter_class = _RequestAdapter
    web: WebContext
    documents: DocumentCache

    def get_context(self, request, response) -> dict[str, Any]:  # noqa: ANN001
        from .auth import current_principal

        return {"request": request, "response": response, "web": self.web, "principal": current_principal()}

    def dispatch_request(self):
        settings = self.web.settings
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            return _error(413, f"the request body ({request.content_length} bytes) is larger than "
                               f"{settings.max_body_bytes} bytes (webui.max_body_bytes)")
        try:
            return self.run(request=request)
        except GraphQLHTTPException as exc:
            if exc.status_code == 200:  # a CORS preflight: nothing to say
                return Response(status=200)
            return _error(exc.status_code, exc.reason)
        except HTTPException as exc:  # werkzeug's, e.g. 413 from a chunked body read past the limit
            return _error(exc.code or 400, exc.description or exc.name)

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise GraphQLHTTPException(400, "the request body is nested too deeply") from exc

    def parse_json(self, data: str | bytes) -> Any:
        value = super().parse_json(data)
        depth = json_depth(value, self.web.settings.max_variables_depth + 1)
        if depth is not None:
            raise GraphQLHTTPException(400, f"the request's JSON is nested more than "
                                            f"{self.web.settings.max_variables_depth} levels deep "
                                            "(webui.max_variables_depth)")
        return value

    def get_graphql_request_data(self, request, context, data, protocol):  # noqa: ANN001
        if isinstance(data, list):
            raise GraphQLHTTPException(400, "batching is not supported: send one operation per request")
        if not isinstance(data, dict):
            raise GraphQLHTTPException(400, 'the request body must be a JSON object {"query": "...", '
                                            '"variables": {...}, "operationName": "..."}')
        for key, kind in (("query", str), ("operationName", str), ("variables", dict), ("extensions", dict)):
            if data.get(key) is not None and not isinstance(data[key], kind):
                raise GraphQLHTTPException(400, f"'{key}' must be a JSON {'string' if kind is str else 'object'}")
        return super().get_graphql_request_data(request, context, data, protocol)

    def execute_operation(self, request_adapter, request_data, context, root_value, allowed_operation_types):  # noqa: ANN001
        from graphql_server import execute_sync

        settings = self.web.settings
        query = request_data.document or request_data.query
        variables = request_data.variables
        checked = False
        if isinstance(query, str) and query:
            # parsed here to bound its tokens: graphql-server's own parse has no limit, and a few MB of
            # aliases take a request thread for tens of seconds before any rule could refuse them;
            # checked here too, once per query text (fast_graphql.DocumentCache)
            try:
                query, errors = self.documents.document(query, settings.max_query_tokens,
                                                        lambda: query_limits_rule(settings, variables), variables)
            except GraphQLError as exc:
                raise GraphQLValidationError([exc]) from exc
            if errors:
                raise GraphQLValidationError(errors)
            checked = True
        return execute_sync(
            schema=self.schema, query=query, root_value=root_value, validate_document=not checked,
            variable_values=request_data.variables, context_value=context,
            operation_name=request_data.operation_name, allowed_operation_types=allowed_operation_types,
            operation_extensions=request_data.extensions, validation_rules=(
                VALIDATION_RULES if checked else (*VALIDATION_RULES, query_limits_rule(settings, variables))),
            execution_context_class=LeafFastExecutionContext,
            middleware=MiddlewareManager(*mutation_middleware(self.web)) if _has_mutation(query) else None)

    def render_graphql_ide(self, request, request_data):  # noqa: ANN001
        # GraphiQL's scripts and styles come from this server (scripts/webui-assets put them in
        # static/vendor, byte for byte what the page's integrity hashes name), never from a CDN: the
        # page works on a machine without internet
        html = self.graphql_ide_html.replace(GRAPHIQL_CDN + "/", url_for("pages.static", filename="vendor/"))
        nonce = csp_nonce()
        # graphql-server's page calls locationQuery() (keeping the editors in the URL) without defining
        # it: defined here, before its own script
        html = html.replace("<script>", f'<script nonce="{nonce}">{_LOCATION_QUERY}</script>\n    '
                            f'<script nonce="{nonce}">', 1)
        # the page's {{query}}, {{variables}} and {{operation_name}} are JavaScript values in its inline
        # script: JSON, with what could end the script escaped (a query holding "</script>" stays text)
        variables = json.dumps(request_data.variables) if request_data.variables is not None else ""
        values = {"query": _script_json(request_data.query), "variables": _script_json(variables),
                  "operation_name": _script_json(request_data.operation_name)}
        return re.sub(r"{{\s*(query|variables|operation_name)\s*}}", lambda m: values[m.group(1)], html)


def _has_mutation(document: Any) -> bool:
    """Whether a parsed document defines a mutation (anything else is treated as one: checked)."""
    if not isinstance(document, DocumentNode):
        return True
    return any(isinstance(d, OperationDefinitionNode) and d.operation == OperationType.MUTATION
               for d in document.definitions)


_LOCATION_QUERY = ("function locationQuery(params) { const search = new URLSearchParams(); "
                   "for (const [key, value] of Object.entries(params || {})) { "
                   "if (value !== undefined && value !== null && value !== '') search.set(key, value); } "
                   "const text = search.toString(); return text ? '?' + text : location.pathname; }")


def _script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside an HTML ``<script>`` element."""
    text = json.dumps(value)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def graphql_view(schema, web: WebContext):
    """The view function for ``/graphql``."""
    # on the class: Flask makes a view object per request
    view = type("RunyardGraphQLView", (RunyardGraphQLView,),
                {"web": web, "documents": DocumentCache(schema.graphql_schema)})
    return view.as_view("graphql", schema=schema.graphql_schema, graphql_ide="graphiql")


def register(app: Flask, schema, web: WebContext) -> None:
    """Serve ``/graphql``; what Flask refuses before the view runs (a method other than GET and
    POST, a body over the limit) is answered in GraphQL's error format there too."""
    app.add_url_rule("/graphql", view_func=graphql_view(schema, web))

    @app.errorhandler(HTTPException)
    def graphql_http_error(exc: HTTPException):
        if request.path != "/graphql":
            return exc  # the pages' handlers, or Flask's own answer
        response = _error(exc.code or 400, exc.description or exc.name)
        allow = dict(exc.get_headers()).get("Allow")
        if allow:  # a 405 says which methods would do
            response.headers["Allow"] = allow
        return response
