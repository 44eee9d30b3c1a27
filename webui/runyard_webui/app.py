"""The Flask application: pages, the GraphQL endpoint, live updates, metrics, health, and who may
use them (:mod:`.auth`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance
    from runyard.workspace.workspace import Workspace

    from .settings import WebuiSettings


def _plugin_routes(app: Flask, web: Any) -> None:
    from runyard.errors import PluginError
    from runyard.plugins import get_plugin_manager

    hook = get_plugin_manager().hook.runyard_register_web_routes
    for impl in hook.get_hookimpls():  # one by one, so a failure names its plugin
        try:
            impl.function(app=app, web=web)
        except Exception as exc:  # noqa: BLE001
            raise PluginError(f"plugin '{impl.plugin_name}' failed to add web routes: "
                              f"{type(exc).__name__}: {exc}") from exc


def create_app(instance: Instance, workspace: Workspace | None = None,
               settings: WebuiSettings | None = None) -> Flask:
    """The web UI over ``instance`` (and the code locations of ``workspace``, started by the caller)."""
    from . import auth, graphql_view, security
    from .context import WebContext
    from .pages import pages
    from .schema import build_schema
    from .settings import WebuiSettings

    settings = settings or WebuiSettings()
    web = WebContext(instance, workspace, settings)
    app = Flask(__name__)
    app.config["RUNYARD_WEB"] = web
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes  # waitress refuses larger ones first
    auth.install(app, web)  # the principal of every request (g.principal), and the pages' checks
    security.install(app, settings)  # Host and Origin checks run before auth; headers on every answer
    graphql_view.register(app, build_schema(), web)
    app.register_blueprint(pages)
    from . import live

    live.register(app, web)  # /live/...: server-sent events, fed by one hub thread
    if settings.metrics_enabled:
        from . import metrics

        metrics.register(app, web)  # /metrics: Prometheus text format, behind the same checks as the pages
    _plugin_routes(app, web)

    from runyard.errors import StorageError

    @app.errorhandler(StorageError)
    def storage_unavailable(exc: StorageError):
        """Storage is down (or refuses us): an error page at once, 503, never a held request."""
        from flask import render_template

        return render_template("error.html", code=503, message=f"Storage is unavailable: {exc}"), 503

    @app.get("/healthz")
    def healthz():
        """For load balancers: 200 when storage answers, 503 (with the reason) when it does not. A
        ``SELECT 1`` (:meth:`~runyard.storage.base.RunStorage.ping`), never a count: as fast with a
        million runs as with none."""
        try:
            web.storage.ping()
        except Exception as exc:  # noqa: BLE001
            return jsonify(status="error", error=f"{type(exc).__name__}: {exc}"), 503
        return jsonify(status="ok")

    return app
