"""The HTML pages. Each is rendered on the server from storage and snapshots, then kept live in the
browser by the scripts under ``static/``: pushed updates from ``/live/...`` (:mod:`.live`) and
GraphQL for what a page loads on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from runyard.storage.records import RunStatus

from .context import WebError

if TYPE_CHECKING:  # pragma: no cover
    from runyard.codeserver.snapshot import JobSnapshot

pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                  static_url_path="/static")

PAGE_SIZE = 50
STATUS_CHOICES = [str(s) for s in RunStatus if s != RunStatus.NOT_STARTED]


def _web():
    return current_app.config["RUNYARD_WEB"]


# ---- times: one zone per browser (the runyard_tz cookie), the same strings as app.js (times.py) ----
def display_zone():
    """The zone this request's page renders times in (:class:`~runyard_webui.times.DisplayZone`)."""
    from flask import g

    from .times import ZONE_COOKIE, zone_from_cookie

    if "runyard_zone" not in g:
        g.runyard_zone = zone_from_cookie(request.cookies.get(ZONE_COOKIE))
    return g.runyard_zone


@pages.app_template_filter("when")
def _when(ts: float | None) -> str:
    """``2026-11-30 08:33:01 +01:00`` in the page's zone (plain text: fits in an attribute too)."""
    from .times import format_when

    return format_when(ts, display_zone().info)


@pages.app_template_filter("clock")
def _clock(ts: float | None) -> str:
    """Time of day with milliseconds: an event log spans one run, its date is in the header."""
    from .times import format_clock

    return format_clock(ts, display_zone().info)


@pages.app_template_filter("timetag")
def _timetag(ts: float | None, fmt: str = "when"):
    """A ``<time>`` element the page's script redraws when the zone changes: ``{{ ts|timetag }}``,
    ``{{ ts|timetag('clock') }}``."""
    from .times import time_tag

    return time_tag(ts, display_zone(), fmt)


@pages.app_template_filter("timetag_in")
def _timetag_in(ts: float | None, zone_name: str | None, fmt: str = "when"):
    """A ``<time>`` element drawn in ``zone_name`` (a schedule's own timezone), named after it."""
    from .times import time_tag

    return time_tag(ts, display_zone(), fmt, fixed_zone=zone_name or "UTC")


@pages.app_context_processor
def _zone_globals():
    zone = display_zone()
    return {"time_zone": zone.name, "time_zone_source": zone.source}


@pages.app_template_filter("seconds")
def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s" if value < 120 else f"{value / 60:.1f} min"


@pages.app_template_filter("yaml")
def _yaml(value) -> str:
    import yaml  # on first use: the web UI starts without PyYAML's import

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False) if value else ""


def _principal():
    """Who sent this request (:func:`runyard_webui.auth.current_principal`): everyone is an admin
    when the web UI asks nobody to log in; nobody may do anything before authentication ran (the
    error page of a refused Host header)."""
    from .auth import current_principal

    return current_principal()


@pages.app_context_processor
def _globals():
    from .permissions import PagePermissions

    web = _web()
    principal = _principal()
    # the nav names whoever signed in; a web UI without authentication has nobody to name
    return {"read_only": web.settings.read_only, "instance_home": web.instance.home,
            "can": PagePermissions(principal, web),
            "signed_in": principal if principal.via != "none" else None}


@pages.get("/")
def index():
    return redirect(url_for("pages.runs"))


@pages.get("/runs")
def runs():
    """The runs list: filters in the URL (docs/webui.md, "The runs list"), status chips, cursor
    paging. No count here: static/runs.js asks GraphQL for the per-status counts after the page
    (one grouped query) and keeps the first page live."""
    from runyard.tags import LaunchedBy

    from .runs_list import STATUS_CHOICES as CHOICES
    from .runs_list import RunsQuery, runs_page

    try:
        query = RunsQuery.from_args(request.args)
        cursor = request.args.get("cursor") or None
        page = runs_page(_web().storage, query, limit=PAGE_SIZE, cursor=cursor)
    except WebError as exc:
        abort(400, exc.message)
    return render_template("runs.html", runs=page.runs, query=query, cursor=cursor, older=page.cursor,
                           statuses=[s for s in CHOICES if s != "NOT_STARTED"], launched_by=LaunchedBy.of)


#: the run page renders at most this many of a run's newest events; older ones load on demand
#: (GraphQL ``runEvents(beforeId:)``), so a 100,000-event run opens as fast as a short one
RUN_PAGE_EVENTS = 500
#: past the newest of any event id: ``before_id`` that reads a run's last events
_NEWEST = 2**63 - 1


@pages.get("/runs/<run_id>")
def run(run_id: str):
    web = _web()
    # The events first, then the run: its status is then at least as new as the events shown (the
    # live stream resumes after them and says nothing until another event comes, so a status read
    # before them could stay STARTING on the page of a run whose step already runs).
    events = web.storage.get_events(run_id, before_id=_NEWEST, limit=RUN_PAGE_EVENTS + 1)
    record = web.storage.get_run(run_id)
    if record is None:
        abort(404, f"no run with id '{run_id}'")
    from runyard.daemon.retries import retry_run_id
    from runyard.operations.failure import run_failure
    from runyard.storage.records import RunStatus
    from runyard.tags import LOCATION_TAG, RETRY_NUMBER_TAG

    from .run_view import children, launched_by, run_plan

    has_older = len(events) > RUN_PAGE_EVENTS
    events = events[-RUN_PAGE_EVENTS:]
    retried_as = web.storage.get_run(retry_run_id(run_id)) if record.status == RunStatus.FAILURE else None
    return render_template("run.html", run=record, events=events, has_older=has_older, plan=run_plan(web, record),
                           cursor=events[-1].id if events else None, failure=run_failure(web.storage, record),
                           retry_number=record.tags.get(RETRY_NUMBER_TAG), retried_as=retried_as,
                           children=children(web, run_id), launched=launched_by(record),
                           location=record.tags.get(LOCATION_TAG), page_events=RUN_PAGE_EVENTS)


@pages.get("/runs/<run_id>/steps/<step_key>/logs")
def step_logs(run_id: str, step_key: str):
    stream = request.args.get("stream", "stdout")
    try:
        chunk = _web().step_logs(run_id, step_key, stream, 0, 4 << 20)
    except WebError as exc:
        abort(404 if exc.code == "NOT_FOUND" else 400, exc.message)
    return render_template("step_logs.html", run_id=run_id, step_key=step_key, stream=stream, chunk=chunk)


def _location_rows(locations) -> list[dict]:
    """Each code location with its container image (:func:`runyard.operations.launch.location_image`)."""
    from runyard.operations.launch import location_image

    return [{"loc": loc, "image": location_image(loc)} for loc in locations]


@pages.get("/jobs")
def jobs():
    locations = _web().locations()
    return render_template("jobs.html", locations=locations,
                           images={r["loc"].name: r["image"] for r in _location_rows(locations)})


@pages.get("/locations/<location>/jobs/<job_name>")
def job(location: str, job_name: str):
    try:
        loc, snap = _web().job(location, job_name)
    except WebError as exc:
        abort(404 if exc.code == "NOT_FOUND" else 503, exc.message)
    from runyard.storage.records import RunFilter

    from .auth import current_scope

    recent = _web().storage.get_runs(RunFilter(job_name=job_name, locations=current_scope()), limit=10)
    # The graph is laid out in the browser (static/graph.js) from the ops as the snapshot has them,
    # handed over in a JSON data block: the Content-Security-Policy allows no inline script, but
    # data is not script.
    graph = {"location": loc.name, "job": snap.name, "ops": [op.to_json() for op in snap.ops],
             "graphs": [g.to_json() for g in snap.graphs],  # nested graphs: boxes around their ops
             "launchpad": url_for("pages.launchpad", location=loc.name, job_name=snap.name)}
    partitions = _partitions_section(loc.name, snap)
    return render_template("job.html", location=loc, job=snap, recent=recent, graph=graph,
                           selection=request.args.get("ops", ""), partitions=partitions)


#: partitions the job page shows (newest first); GraphQL Job.partitions lists more
JOB_PAGE_PARTITIONS = 1000


def _partitions_section(location: str, job: JobSnapshot) -> dict | None:
    """The job page's partitions section (docs/partitions.md): the newest partitions with their
    last runs, and how many there are; None for a job without partitions."""
    if job.partitions is None:
        return None
    total = len(job.partitions.get_partition_keys())
    rows = _web().partition_statuses(location, job.name, JOB_PAGE_PARTITIONS)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    return {"rows": rows, "total": total, "counts": dict(sorted(counts.items())), "definition": job.partitions}


def scaffold_run_config(job: JobSnapshot) -> dict:
    """A starting run config for the launchpad: every configurable op and resource of ``job`` (its
    snapshot) with each field's default, ``None`` where a field is required, and the job's own
    default run config on top — so the user edits values instead of recalling key names."""
    from runyard.definitions.config import deep_merge

    def fields(schema: dict | None) -> dict | None:
        props = (schema or {}).get("properties")
        if not props:
            return None
        return {name: prop.get("default") for name, prop in props.items()}

    scaffold: dict = {}
    if job.graphs:  # nested graphs: ops: {outer: {ops: {inner: ...}}}; a mapped graph: its own config
        from runyard.definitions.graph_config import node_config_keys

        mapped = [g for g in job.graphs if g.config_mapped]
        entries = [(g.path, g.config_schema) for g in mapped if not any(g.path.startswith(m.path + ".")
                                                                     for m in mapped)]
        entries += [(op.name, op.config_schema) for op in job.ops
                    if not any(op.name.startswith(m.path + ".") for m in mapped)]
        for path, schema in entries:
            if (cfg := fields(schema)) is not None:
                entry = scaffold
                for key in node_config_keys(path):
                    entry = entry.setdefault(key, {})
                entry["config"] = cfg
    else:
        ops = {op.name: {"config": cfg} for op in job.ops if (cfg := fields(op.config_schema))}
        if ops:
            scaffold["ops"] = ops
    resources = {r.key: {"config": cfg} for r in job.resources if (cfg := fields(r.config_schema))}
    if resources:
        scaffold["resources"] = resources
    return deep_merge(scaffold, job.default_run_config or {})


# ---- the launchpad (launchpad.py, static/launchpad.js; docs/webui.md, "The launchpad") ----------
@pages.get("/locations/<location>/jobs/<job_name>/launchpad")
def launchpad(location: str, job_name: str):
    """``?ops=SELECTION`` prefills the op selection; ``?from_run=RUN_ID`` that run's config, tags and
    op selection (the run page's "re-execute with edited config")."""
    from jinja2.utils import htmlsafe_json_dumps

    from runyard.tags import USER_TAGS

    from .launchpad import completion_schema, launchpad_start

    try:
        loc, snap = _web().job(location, job_name)
    except WebError as exc:
        abort(404 if exc.code == "NOT_FOUND" else 503, exc.message)
    try:
        start = launchpad_start(_web(), snap, scaffold_run_config(snap), request.args.get("ops"),
                                request.args.get("from_run"))
    except WebError as exc:
        abort(404 if exc.code == "NOT_FOUND" else 400, exc.message)
    data = {"location": loc.name, "job": snap.name, "schema": completion_schema(snap), "tags": start.tags,
            "userTags": sorted(USER_TAGS)}
    if snap.partitions is not None:  # the partition picker: the newest keys to choose from (any may be typed)
        from runyard.tags import PARTITION_TAG

        data["partitions"] = {"keys": snap.partitions.get_partition_keys()[::-1][:JOB_PAGE_PARTITIONS],
                              "selected": request.args.get("partition") or None,
                              # prefilled from a run of a partition: that partition, with the run's config
                              "fromRun": start.from_run.tags.get(PARTITION_TAG) if start.from_run else None}
    # not |tojson, which sorts keys: completions keep the order the config models declare fields in
    return render_template("launchpad.html", location=loc, job=snap, start=start, data=htmlsafe_json_dumps(data))


@pages.get("/status")
def status():
    from runyard.daemon.status import daemon_status

    web = _web()
    daemon = daemon_status(web.storage)
    daemons = daemon["daemons"]
    return render_template("status.html", daemon=daemon, locations=_location_rows(web.locations()),
                           leaders=[d["daemon_id"] for d in daemons if d["state"] == "leader"],
                           standbys=[d["daemon_id"] for d in daemons if d["state"] == "standby"],
                           storage=web.storage.describe().get("url") or web.storage.name,
                           coordinator=web.instance.run_coordinator.name, launcher=web.instance.run_launcher.name)


@pages.get("/automation")
def automation():
    web = _web()
    rows = web.automation_rows()
    for row in rows:
        row["ticks"] = web.ticks(row["name"], 5)
        row["next_ticks"] = web.next_ticks(row, 1)
    return render_template("automation.html", rows=rows)


#: ticks on one page of a schedule's or sensor's history
TICK_PAGE_SIZE = 20


def _tick_cursor(name: str) -> int | None:
    value = request.args.get(name) or None
    if value is not None and not value.isdigit():
        abort(400, f"{name} must be a tick id (a whole number), not {value!r}")
    return None if value is None else int(value)


@pages.get("/automation/<kind>/<name>")
def instigator(kind: str, name: str):
    """One schedule or sensor: its definition, next ticks, tick history (paged by tick id, live on
    the newest page) and the dry run."""
    web = _web()
    before, after = _tick_cursor("before"), _tick_cursor("after")
    try:
        row = web.automation_row(kind, name)
        page = web.tick_page(name, TICK_PAGE_SIZE, before, after)
    except WebError as exc:
        abort(404 if exc.code == "NOT_FOUND" else 400, exc.message)
    runs = {rid: run for t in page["ticks"] for rid in t.run_ids if (run := web.storage.get_run(rid)) is not None}
    return render_template("instigator.html", row=row, page=page, next_ticks=web.next_ticks(row), runs=runs,
                           live=page["newer"] is None, page_size=TICK_PAGE_SIZE)


# ---- the audit log (audit_view.py, static/audit.js; docs/auth.md, "The audit log in the web UI") ---
AUDIT_PAGE_SIZE = 50


@pages.get("/audit")
def audit():
    """Every audited action, newest first, for admins not limited to code locations: filters in the
    URL (``actor``, ``action``, ``location``, ``result``), older pages by entry id (``?before=<id>``)."""
    from runyard.auth import Action

    from .audit_view import RESULTS, AuditQuery, audit_page, details_text
    from .auth import require
    from .schema.mutations import Mutation

    # as the auditLog query asks: the log spans every code location (None), so a principal limited
    # to some may not read it, whatever its role
    require(Action.READ_AUDIT_LOG, None)
    try:
        query = AuditQuery.from_args(request.args)
    except WebError as exc:
        abort(400, exc.message)
    web = _web()
    try:
        page = audit_page(web.storage, query, limit=AUDIT_PAGE_SIZE)
    except NotImplementedError as exc:  # a third-party storage without an audit log yet
        abort(501, str(exc))
    from graphene.utils.str_converters import to_camel_case

    # what the action field suggests: every mutation (each is audited under its GraphQL name)
    actions = sorted(to_camel_case(name) for name in Mutation._meta.fields)
    return render_template("audit.html", entries=page.entries, older=page.older, query=query, results=RESULTS,
                           actions=actions, locations=[loc.name for loc in web.locations()],
                           details_text=details_text, page_size=AUDIT_PAGE_SIZE)


# ---- backfills (docs/backfills.md; runyard_webui/backfills.py, static/backfills.js) ----------------
#: partitions the backfill page lists (GraphQL Backfill.partitions pages through more)
BACKFILL_PAGE_PARTITIONS = 2000


@pages.get("/backfills")
def backfills():
    from runyard.operations.backfills import backfill_progress

    from .backfills import list_backfills

    web = _web()
    try:
        statuses = [s for s in request.args.getlist("status") if s]
        found = list_backfills(web, statuses or None, PAGE_SIZE, request.args.get("cursor") or None)
    except WebError as exc:
        abort(400, exc.message)
    rows = [(bf, backfill_progress(web.storage, bf)) for bf in found]
    jobs = [(loc.name, job.name) for loc in web.locations() if loc.snapshot is not None
            for job in loc.snapshot.jobs if job.partitions is not None]
    return render_template("backfills.html", rows=rows, jobs=jobs, statuses=statuses,
                           older=found[-1].backfill_id if len(found) == PAGE_SIZE else None)


@pages.get("/backfills/<backfill_id>")
def backfill(backfill_id: str):
    from runyard.operations.backfills import backfill_progress, partition_runs

    from .backfills import visible_backfill

    web = _web()
    bf = visible_backfill(web, backfill_id)
    if bf is None:
        abort(404, f"no backfill with id '{backfill_id}'")
    rows = list(partition_runs(web.storage, bf).items())
    return render_template("backfill.html", bf=bf, progress=backfill_progress(web.storage, bf),
                           rows=rows[:BACKFILL_PAGE_PARTITIONS], more=max(0, len(rows) - BACKFILL_PAGE_PARTITIONS))


@pages.app_errorhandler(400)
@pages.app_errorhandler(403)
@pages.app_errorhandler(404)
@pages.app_errorhandler(501)
@pages.app_errorhandler(503)
def _error(exc):
    return render_template("error.html", code=exc.code, message=exc.description), exc.code
