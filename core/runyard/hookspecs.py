"""The hook specifications: the whole contract between runyard and its plugins.

A plugin is a module (or object) with functions named like the specs below, each marked with
``@runyard.hookimpl`` (defined here, beside :data:`hookspec`), published under the entry-point group
``runyard``::

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

    from .auth import Action, Principal
    from .instance.sections import SectionRegistry
    from .operations.serve import DevContext, Service
    from .registry import ComponentRegistry
    from .storage.records import Event, RunRecord, RunStatus

hookspec = pluggy.HookspecMarker("runyard")
#: Marks a plugin's hook implementations. Exported as ``runyard.hookimpl`` (and, for plugins written
#: before it moved here, ``runyard.plugins.hookimpl``). A marked function whose name is not a spec
#: below, or whose arguments are not the spec's, stops plugin loading with an error naming both.
hookimpl = pluggy.HookimplMarker("runyard")


# --------------------------------------------------------------------------------------------------
# Components: one hook per kind. Each receives a registry and calls ``registry.add(name, cls)``.
# ``cls`` subclasses the kind's ABC (checked) and sets ``config_model`` to a pydantic model of its
# config; given as ``"package.module:Class"`` it is imported (and checked) only when selected. A hook
# that raises leaves its plugin broken for that kind only: listed by ``runyard plugins``, reported
# when a lookup needs it, never failing the lookups other plugins answer.
# --------------------------------------------------------------------------------------------------

@hookspec
def runyard_register_storage(registry: ComponentRegistry) -> None:
    """Register run storage implementations.

    Call ``registry.add("name", StorageClass)``. ``StorageClass`` subclasses
    :class:`runyard.storage.base.RunStorage` (most plugins subclass
    :class:`runyard.storage.sql.SqlRunStorage` and only build an engine; a SQL dialect core does
    not know registers a :class:`runyard.storage.sql.dialects.SqlDialect` for its column types,
    session settings and locking) and defines
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
    The web UI's authentication, when configured, guards the plugin's routes too
    (``flask.g.principal`` is who asked; check with ``runyard_webui.auth.require``). A route must
    not import user code: read definitions from ``web.locations()`` snapshots.
    """


@hookspec(firstresult=True)
def runyard_web_authenticate(request: Any, web: Any) -> Principal | None:
    """Say who sent a web UI request: OIDC, a trusted proxy's header, a client certificate.

    ``request`` is the :class:`flask.Request`; ``web`` the web UI's context. Return a
    :class:`runyard.auth.Principal` (its ``name`` is what the audit log and the ``runyard/user`` tag
    record, ``via`` a word of yours such as ``oidc``, ``role`` and ``locations`` what it may do), or
    None to let the next plugin, then the web UI's own API tokens and ``webui.auth`` users, decide.
    Raise :class:`runyard.auth.AuthError` to refuse the request with 401 and its message. The first
    non-None answer wins. Called for every request but ``/healthz``, in the web UI process, after the
    ``Host`` and ``Origin`` checks; with no ``webui.auth`` block a request it answers None for is
    served as ``anonymous`` with role admin (as before roles existed). Must be quick (it runs for
    every request, static files included) and must trust only what a client cannot forge (a header
    your proxy sets and strips from incoming requests).
    """


@hookspec
def runyard_web_authorize(principal: Principal, action: Action, location: str | None, web: Any) -> bool | None:
    """Veto (or not) what a principal is about to do in the web UI.

    Called after the built-in check allowed it (the role is high enough, the code location within
    the principal's ``locations``): for each mutation with the code location of what it acts on
    (``location`` None when that has none, or when the check is not about one code location: a page
    as a whole, the audit log, a bulk action before its runs are looked at), and for each request
    with ``Action.READ``. Return False to refuse (GraphQL answers ``code: FORBIDDEN``, a page 403),
    True or None to let it through; any False refuses. It can only narrow what roles allow. Called
    in the web UI process, for every request: keep it quick.
    """


# --------------------------------------------------------------------------------------------------
# The instance file: top-level sections owned by plugins
# --------------------------------------------------------------------------------------------------

@hookspec
def runyard_register_instance_sections(registry: SectionRegistry) -> None:
    """Own top-level sections of the instance file (``webui:`` belongs to ``runyard-webui``).

    Call ``registry.add("name", Model)`` (:class:`runyard.instance.sections.SectionRegistry`).
    ``Model`` is a pydantic model of the block that accepts an empty mapping (every key has a
    default; an absent block is the defaults) and types secrets as ``pydantic.SecretStr``. A name
    runyard itself uses, or one another plugin registered, is an error naming both.

    Called once per process, the first time an instance file with a top-level key runyard does not
    own is opened (so in any process that opens the instance: CLI, daemon, web UI, run workers).
    Core then validates the block (errors name file, line and key path; no number may be inf or
    NaN) and refuses a key no installed plugin owns; a block holding ``{env: ...}`` references is
    resolved and validated when ``instance.section("name")`` is first called, in the process that
    uses it, and run workers and code servers do not inherit the variables it names. Read the validated block with
    ``instance.section("name")``; ``runyard instance info`` lists it with secrets masked. Import
    nothing heavy: only the model's module.
    """


# --------------------------------------------------------------------------------------------------
# runyard dev: services plugins run beside the code servers and the daemon
# --------------------------------------------------------------------------------------------------

@hookspec
def runyard_dev_options() -> list[click.Parameter]:
    """Add options to ``runyard dev`` for the services this plugin contributes.

    Return a list of :class:`click.Option` (or None). Their values reach
    :func:`runyard_dev_services` in ``context.options`` under each option's parameter name, so
    choose names that say whose they are (``runyard-webui`` adds ``-p/--port`` and
    ``--webui/--no-webui``). An option name or flag another plugin (or ``runyard dev`` itself)
    already uses is an error naming both plugins. Called once, in the CLI process, when
    ``runyard dev`` (or its ``--help``) is invoked, before its arguments are parsed; no other
    command loads it.
    """


@hookspec
def runyard_dev_services(context: DevContext) -> list[Service] | None:
    """Contribute services that ``runyard dev`` runs beside the code servers and the daemon.

    ``context`` is a :class:`runyard.operations.serve.DevContext`: ``instance``, ``workspace``
    (started; None without one) and ``options`` (every ``runyard dev`` option by parameter name,
    yours from :func:`runyard_dev_options` included). Return a list of
    :class:`runyard.operations.serve.Service` objects, not yet started (or None / an empty list,
    e.g. when your ``--no-...`` option turned the service off). Raise a
    :class:`runyard.errors.RunyardError` for a problem meant for the user (bad settings, port in
    use): ``runyard dev`` then stops what it started and exits non-zero.

    Called once, in the ``runyard dev`` process, after the code servers and the daemon started.
    ``runyard dev`` starts each service (in pluggy's call order), prints ``name: address``, and on
    SIGINT/SIGTERM stops them in reverse order before the daemon and the code servers, then exits 0.
    ``start()`` must not block (serve on your own thread) and ``stop()`` must leave no thread,
    socket or child process behind.
    """


def documented_hooks() -> dict[str, Any]:
    """name -> spec function, for docs and tests."""
    return {name: fn for name, fn in globals().items()
            if name.startswith("runyard_") and callable(fn)}
