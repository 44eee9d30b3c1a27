"""Entry point of the ``runyard-webui`` distribution: ``runyard webui``, the ``webui:`` section of
the instance file, and the web UI as a service of ``runyard dev`` (with its ``-p/--port`` and
``--webui/--no-webui`` options). Kept light: each hook imports what it needs when called."""

from __future__ import annotations

from runyard import hookimpl


@hookimpl
def runyard_register_commands(cli) -> None:
    from .cli import webui

    cli.add_command(webui)


@hookimpl
def runyard_register_instance_sections(registry) -> None:
    from .settings import SECTION, WebuiSettings

    registry.add(SECTION, WebuiSettings)


@hookimpl
def runyard_dev_options():
    import click

    return [
        click.Option(["-p", "--port", "webui_port"], type=click.IntRange(0, 65535), default=None,
                     help="Web UI port [webui.port in the instance file, default 3000; 0 picks a free one]."),
        click.Option(["--webui/--no-webui", "with_webui"], default=True, show_default=True,
                     help="Serve the web UI too."),
        click.Option(["--insecure-no-auth", "webui_insecure_no_auth"], is_flag=True, default=False,
                     help="Let the web UI serve beyond loopback (webui.host) without webui.auth."),
    ]


@hookimpl
def runyard_dev_services(context):
    if not context.options.get("with_webui", True):
        return None
    from .security import plain_http_warning
    from .server import build_web_server
    from .settings import load_webui_settings

    instance = context.instance
    settings = load_webui_settings(instance, {"port": context.options.get("webui_port")})
    clear_text = plain_http_warning(settings)
    if clear_text:
        import click

        click.echo(f"Warning: {clear_text}", err=True)
    return [build_web_server(instance, context.workspace, settings,
                             insecure_no_auth=bool(context.options.get("webui_insecure_no_auth")))]
