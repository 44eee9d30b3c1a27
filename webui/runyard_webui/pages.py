"""The HTML pages. Each is rendered on the server from storage and snapshots, then kept live by
``static/app.js`` through the GraphQL API (run events by long poll, the run list by refresh)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import yaml
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


@pages.app_template_filter("when")
def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@pages.app_template_filter("clock")
def _clock(ts: float | None) -> str:
    """Time of day with milliseconds: an event log spans one run, its date is in the header."""
    if ts is None:
        return ""
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


@pages.app_template_filter("seconds")
def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s" if value < 120 else f"{value / 60:.1f} min"


@pages.app_template_filter("yaml")
def _yaml(value) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False) if value else ""


@pages.app_context_processor
def _globals():
    web = _web()
    return {"read_only": web.settings.read_only, "instance_home": web.instance.home}


@pages.get("/")
def index():
    return redirect(url_for("pages.runs"))


@pages.get("/runs")
def runs():
    from runyard.storage.records import RunFilter, RunStatus

    status = request.args.get("status") or None
    if status is not None and status not in STATUS_CHOICES:
        abort(400, f"unknown status {status!r}")
    cursor = request.args.get("cursor") or None
    job = request.args.get("job") or None
    filters = RunFilter(statuses=[RunStatus(status)] if status else None, job_name=job)
    storage = _web().storage
    if cursor is not None and storage.get_run(cursor) is None:
        abort(400, f"unknown cursor {cursor!r}: start again from the newest runs")
    page = storage.get_runs(filters, limit=PAGE_SIZE + 1, cursor=cursor)
    older = page[PAGE_SIZE - 1].run_id if len(page) > PAGE_SIZE else None
    return render_template("runs.html", runs=page[:PAGE_SIZE], status=status, count=storage.count_runs(filters),
                           statuses=STATUS_CHOICES, cursor=cursor, older=older, job=job)


@pages.get("/runs/<run_id>")
def run(run_id: str):
    web = _web()
    record = web.storage.get_run(run_id)
    if record is None:
        abort(404, f"no run with id '{run_id}'")
    from runyard.daemon.retries import retry_run_id
    from runyard.operations.failure import run_failure
    from runyard.storage.records import RunStatus
    from runyard.tags import RETRY_NUMBER_TAG

    events = web.storage.get_events(run_id)
    retried_as = web.storage.get_run(retry_run_id(run_id)) if record.status == RunStatus.FAILURE else None
    return render_template("run.html", run=record, events=events, steps=web.storage.get_step_stats(run_id),
                           cursor=events[-1].id if events else None, failure=run_failure(web.storage, record),
                           retry_number=record.tags.get(RETRY_NUMBER_TAG), retried_as=retried_as)


@pages.get("/runs/<run_id>/steps/<step_key>/logs")
def step_logs(run_id: str, step_key: str):
    stream = request.args.get("stream", "stdout")
    try:
        chunk = _web().step_logs(run_id, step_key, stream, 0, 4 << 20)
    except WebError as exc:
        abort(404 if exc.code == "NOT_FOUND" else 400, exc.message)
    return render_template("step_logs.html", run_id=run_id, step_key=step_key, stream=stream, chunk=chunk)


@pages.get("/jobs")
def jobs():
    return render_template("jobs.html", locations=_web().locations())


@pages.get("/locations/<location>/jobs/<job_name>")
def job(location: str, job_name: str):
    try:
        loc, snap = _web().job(location, job_name)
    except WebError as exc:
        abort(404 if exc.code == "NOT_FOUND" else 503, exc.message)
    from runyard.storage.records import RunFilter

    recent = _web().storage.get_runs(RunFilter(job_name=job_name), limit=10)
    return render_template("job.html", location=loc, job=snap, default_config=_yaml(scaffold_run_config(snap)),
                           recent=recent)


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
    ops = {op.name: {"config": cfg} for op in job.ops if (cfg := fields(op.config_schema))}
    if ops:
        scaffold["ops"] = ops
    resources = {r.key: {"config": cfg} for r in job.resources if (cfg := fields(r.config_schema))}
    if resources:
        scaffold["resources"] = resources
    return deep_merge(scaffold, job.default_run_config or {})


@pages.get("/status")
def status():
    from runyard.daemon.status import daemon_status

    web = _web()
    return render_template("status.html", daemon=daemon_status(web.storage), locations=web.locations(),
                           storage=web.storage.describe().get("url") or web.storage.name,
                           coordinator=web.instance.run_coordinator.name, launcher=web.instance.run_launcher.name)


@pages.get("/automation")
def automation():
    web = _web()
    rows = web.instigators("schedule") + web.instigators("sensor")
    for row in rows:
        row["ticks"] = web.ticks(row["name"], 5)
    return render_template("automation.html", rows=rows)


@pages.app_errorhandler(400)
@pages.app_errorhandler(404)
@pages.app_errorhandler(503)
def _error(exc):
    return render_template("error.html", code=exc.code, message=exc.description), exc.code
