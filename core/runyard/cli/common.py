"""Options and helpers shared by commands."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ..errors import ConfigError
from ..params import HOST, PORT, RUN_ID, SECONDS, FiniteFloatRange  # noqa: F401 - for the commands here


def open_instance():
    from ..instance.instance import Instance

    return Instance.open()


def require_launcher(instance, cls: type, name: str, command: str):
    """The instance's run launcher, refused (a :class:`RunyardError` naming the instance file) unless it
    is a ``cls``: for commands a launcher's plugin adds (``runyard <name> <command>``)."""
    import os

    from ..errors import RunyardError

    launcher = instance.run_launcher
    if not isinstance(launcher, cls):
        source = instance.instance_file
        where = (f"run_launcher in {source}" if source and os.path.exists(source)
                 else f"the default: {source} does not exist")
        raise RunyardError(f"runyard {name} {command} needs the {name} run launcher, but the instance's run "
                           f"launcher is '{launcher.name}' ({where}); set `run_launcher: {{{name}: {{...}}}}` "
                           "in the instance file.")
    return launcher


def code_location_options(fn):
    fn = click.option("-a", "--attribute", help="Name of the Definitions object (or job) in the module.")(fn)
    fn = click.option("-d", "--working-directory", type=click.Path(file_okay=False),
                      help="Directory put on sys.path (default: the file's directory / cwd).")(fn)
    fn = click.option("-m", "--module", "module", help="Python module holding the definitions.")(fn)
    fn = click.option("-f", "--file", "python_file", type=click.Path(dir_okay=False),
                      help="Python file holding the definitions.")(fn)
    return fn


def load_location(python_file, module, attribute, working_directory):
    from ..workspace.loader import code_pointer_for, load_definitions

    if not python_file and not module:
        raise click.UsageError("give a definitions file with -f FILE or a module with -m MODULE")
    pointer = code_pointer_for(python_file, module, attribute, working_directory)
    return pointer, load_definitions(pointer)


def load_run_config(paths: tuple[str, ...]) -> dict[str, Any]:
    from ..definitions.config import deep_merge
    from ..instance.yaml_source import load_yaml_file

    merged: dict[str, Any] = {}
    for path in paths:
        doc = load_yaml_file(path)
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            raise ConfigError("run config must be a mapping", source=path, line=1)
        merged = deep_merge(merged, doc.data)
    return merged


def parse_tags(pairs: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--tag")
        tags[key] = value
    return tags


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}m"


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


_STATUS_COLORS = {"SUCCESS": "green", "FAILURE": "red", "CANCELED": "yellow", "CANCELING": "yellow",
                  "STARTED": "cyan", "STARTING": "cyan", "QUEUED": "blue"}


def styled_status(status: str) -> str:
    return click.style(status, fg=_STATUS_COLORS.get(status))


_EVENT_COLORS = {"STEP_SUCCESS": "green", "STEP_FAILURE": "red", "RUN_FAILURE": "red",
                 "RUN_SUCCESS": "green", "STEP_UP_FOR_RETRY": "yellow", "STEP_SKIPPED": "yellow",
                 "RUN_CANCELED": "yellow", "HOOK_ERRORED": "red"}


def format_event(event, *, show_run: bool = False) -> str:
    ts = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
    ms = f"{event.timestamp % 1:.3f}"[1:]
    kind = str(event.event_type)
    step = event.step_key or "-"
    line = f"{ts}{ms}  {click.style(kind.ljust(17), fg=_EVENT_COLORS.get(kind))}  {step[:24]:24}  {event.message}"
    if event.level == "ERROR" and event.data.get("traceback"):
        line += "\n" + "\n".join("    " + ln for ln in str(event.data["traceback"]).rstrip().splitlines())
    elif event.level == "ERROR" and event.data.get("error") and "\n" in str(event.data["error"]):
        line += "\n" + "\n".join("    " + ln for ln in str(event.data["error"]).rstrip().splitlines())
    return line


def _terminal_stdout():
    """A stream on a copy of fd 1 as it is now: it keeps reaching the terminal (or pipe) while a
    step's compute log capture points fd 1 at a file, so ``job execute``'s progress is not
    swallowed into the step's log. None when stdout is not a real file descriptor."""
    import io
    import os
    import sys

    try:
        fd = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return open(fd, "w", buffering=1, encoding=getattr(sys.stdout, "encoding", None) or "utf-8",
                errors="replace", closefd=True)


def progress_printer(verbose: bool):
    import sys

    hidden = set() if verbose else {"LOADED_INPUT", "STEP_OUTPUT", "HANDLED_OUTPUT"}
    terminal = _terminal_stdout()

    def listener(event) -> None:
        if str(event.event_type) in hidden or (event.level == "DEBUG" and not verbose):
            return
        if terminal is None:
            click.echo(format_event(event))
            return
        sys.stdout.flush()  # keep order with what was printed to sys.stdout before
        click.echo(format_event(event), file=terminal)

    return listener
