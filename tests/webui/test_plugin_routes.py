"""``runyard_register_web_routes``: a plugin adds a route to the web UI, served over real HTTP with
the web UI's auth in front of it; a plugin whose hook raises stops the web UI with its name."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from runyard import Instance
from runyard.errors import PluginError
from runyard.plugins import get_plugin_manager, hookimpl
from runyard_webui import create_app
from runyard_webui.server import WebServer
from runyard_webui.settings import BasicAuthSettings, WebuiSettings


class CountsPlugin:
    @hookimpl
    def runyard_register_web_routes(self, app, web):
        @app.get("/plugin/run-count")
        def run_count():
            return {"runs": web.storage.count_runs(), "read_only": web.settings.read_only}


class BrokenPlugin:
    @hookimpl
    def runyard_register_web_routes(self, app, web):
        raise RuntimeError("no routes today")


@pytest.fixture
def registered():
    pm = get_plugin_manager()
    added = []

    def register(plugin, name):
        pm.register(plugin, name=name)
        added.append(plugin)

    yield register
    for plugin in added:
        pm.unregister(plugin)


def test_a_plugin_route_is_served_behind_the_web_uis_auth(home, registered):
    registered(CountsPlugin(), "counts")
    instance = Instance.open(home=str(home))
    settings = WebuiSettings(port=0, auth=BasicAuthSettings(username="u", password="p"))
    server = WebServer(create_app(instance, None, settings), "127.0.0.1", 0, 2).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(server.url + "/plugin/run-count", timeout=10)
        assert denied.value.code == 401
        req = urllib.request.Request(server.url + "/plugin/run-count", headers={"Authorization": "Basic dTpw"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.load(resp) == {"runs": 0, "read_only": False}
    finally:
        server.stop()
        instance.dispose()


def test_a_failing_plugin_is_named(home, registered):
    registered(BrokenPlugin(), "broken-routes")
    instance = Instance.open(home=str(home))
    try:
        with pytest.raises(PluginError, match="plugin 'broken-routes' failed to add web routes: RuntimeError"):
            create_app(instance, None, WebuiSettings())
    finally:
        instance.dispose()
