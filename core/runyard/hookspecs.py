"""The hook specifications: the whole contract between runyard and its plugins.

A plugin is a module (or object) with functions named like the specs below, each marked with
``@runyard.plugins.hookimpl``, published under the entry-point group ``runyard``::

    # pyproject.toml of your distribution
    [project.entry-points.runyard]
    my_launcher = "my_pkg.plugin"

Installing the distribution is all it takes: runyard loads every entry point in the group the
first time it needs a component, and its built-in components register through these same hooks.
Set ``RUNYARD_DISABLE_PLUGINS=name1,name2`` to block entry points by name.

Hooks are grouped by lifecycle. Component hooks are called once per process, when the first
component of that kind is looked up; lifecycle hooks are called as things happen, in the process
that made them happen. Every docstring below is mirrored in ``docs/plugin-authors.md`` (a test
checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from .registry import ComponentRegistry
    from .storage.records import Event, RunRecord, RunStatus

hookspec = pluggy.HookspecMarker("runyard")


# --------------------------------------------------------------------------------------------------
# Components: one hook per kind. Each receives a registry and calls ``registry.add(name, cls)``.
# ``cls`` subclasses the kind's ABC and sets ``config_model`` to a pydantic model of its config.
# --------------------------------------------------------------------------------------------------

@hookspec
def runyard_register_storage(registry: ComponentRegistry) -> None:
    """Register run storage implementations.

    Call ``registry.add("name", StorageClass)``. ``StorageClass`` subclasses
    :class:`runyard.storage.base.RunStorage` (most plugins subclass
    :class:`runyard.storage.sql.SqlRunStorage` and only build an engine) and defines
    ``config_model`` (a pydantic model) and ``classmethod from_config(config, context)`` where
    ``context`` is a :class:`runyard.storage.base.StorageContext` (the instance home and file).

    Selected by ``storage: {name: {...config}}`` in the instance file. Called in every process that
    opens the instance: CLI, run workers, step processes, the daemon and the web UI — so the
    storage must tolerate many processes at once and must not do work at import time.
    """


@hookspec
def runyard_register_run_coordinator(registry: ComponentRegistry) -> None:
    """Register run coordinators.

    Call ``registry.add("name", CoordinatorClass)``; the class subclasses
    :class:`runyard.coordinators.base.RunCoordinator` and defines ``config_model``. Its
    ``submit_run(context)`` receives a :class:`runyard.coordinators.base.SubmitRunContext` holding
    a run already stored as ``NOT_STARTED`` and must either hand it to the launcher or move it to
    ``QUEUED`` for the daemon. Selected by ``run_coordinator:``; called in the process that submits
    (CLI, web UI, daemon ticks).
    """


@hookspec
def runyard_register_run_launcher(registry: ComponentRegistry) -> None:
    """Register run launchers.

    Call ``registry.add("name", LauncherClass)``; the class subclasses
    :class:`runyard.launchers.base.RunLauncher`. ``launch_run(context)`` gets a
    :class:`runyard.launchers.base.LaunchRunContext` for a run in ``STARTING`` and must start a
    run worker (``runyard execute-run RUN_ID`` or equivalent) somewhere, record what identifies it
    through ``context.record_worker(...)`` and return without waiting for the run. It also
    implements ``terminate(context)`` and, when ``supports_health_check`` is true,
    ``check_run_worker_health(context)``. Selected by ``run_launcher:``; called in the process
    that launches (CLI, web UI, daemon) and in run monitoring.
    """


@hookspec
def runyard_register_executor(registry: ComponentRegistry) -> None:
    """Register executors.

    Call ``registry.add("name", ExecutorClass)``; the class subclasses
    :class:`runyard.executors.base.Executor`. ``execute(context)`` gets an
    :class:`runyard.executors.base.ExecuteContext` (the plan, the run, the job, an event sink and
    a step runner) and runs every step of the plan, reporting each step's events. Selected per run
    by run config ``execution: {name: {...}}``; called inside the run worker.
    """


# --------------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------------

@hookspec
def runyard_run_status_changed(run: RunRecord, old_status: RunStatus | None,
                               new_status: RunStatus, event: Event | None) -> None:
    """A run's status changed: called after the change was committed to storage.

    ``run`` is the run as it was before the change (its ``status`` is ``old_status``), ``event``
    the event written with the change. Called in the process that made the change: the submitter
    for ``NOT_STARTED``/``QUEUED``/``STARTING``, the run worker for ``STARTED`` and the final
    statuses, run monitoring for a dead worker. Must return quickly and must not raise; an exception
    is logged and swallowed so a plugin can never break a run.
    """


@hookspec
def runyard_register_commands(cli: click.Group) -> None:
    """Add commands to the ``runyard`` command line.

    ``cli`` is the root :class:`click.Group`; call ``cli.add_command(...)``. Called once, when the
    CLI starts, before arguments are parsed. Import heavy modules inside your command, not at
    module level, so ``runyard --help`` stays fast.
    """


@hookspec
def runyard_register_web_routes(app: Any, web: Any) -> None:
    """Add pages, API endpoints or blueprints to the web UI (distribution ``runyard-webui``).

    ``app`` is the :class:`flask.Flask` application, with the built-in routes already registered;
    call ``app.register_blueprint(...)`` or ``app.add_url_rule(...)``. ``web`` is the web UI's
    context (:class:`runyard_webui.context.WebContext`): ``web.instance``, ``web.storage``,
    ``web.workspace`` (may be None) and ``web.settings`` (the ``webui:`` block; honour
    ``web.settings.read_only`` in anything that changes state). Called once per application, in
    the web UI process (``runyard webui``, ``runyard dev`` or :func:`runyard_webui.create_app`).
    The web UI's basic auth, when configured, guards the plugin's routes too. A route must not
    import user code: read definitions from ``web.locations()`` snapshots.
    """


def documented_hooks() -> dict[str, Any]:
    """name -> spec function, for docs and tests."""
    return {name: fn for name, fn in globals().items()
            if name.startswith("runyard_") and callable(fn)}
