"""The GraphQL middlewares around every root field of the ``Mutation`` type (docs/auth.md):

* :class:`AuthorizeMiddleware` refuses a mutation whose least role (``auth.MUTATION_ACTIONS``) the
  principal does not have, before it resolves; a mutation missing from that table is admin-only.
  The code location of what a mutation acts on is checked by the web context when it finds it
  (:meth:`runyard_webui.context.WebContext.check`).
* :class:`AuditMiddleware` writes one :class:`~runyard.storage.records.AuditEntry` per mutation:
  who (the principal's name, how it authenticated, its role), what (the field name), the target
  and its code location, when, and how it ended — ``ok``, ``refused`` (role, code location,
  read-only) or ``failed`` (allowed, but invalid, not found, or an error) with its code and
  message. Reads are not audited. Writing the entry never fails the mutation: a storage error is
  logged.

They are installed only for documents that hold a mutation, so queries pay nothing for them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context, request

from runyard.auth import Role

from .auth import MUTATION_ACTIONS, current_principal
from .context import FORBIDDEN, READ_ONLY
from .security import refused_payload

if TYPE_CHECKING:  # pragma: no cover
    from .context import WebContext

log = logging.getLogger("runyard.webui.audit")

#: run ids named in one entry's ``target`` (the rest are counted in ``details``)
MAX_TARGET_IDS = 20
#: refusal codes: the action was not allowed (anything else that did not succeed "failed")
REFUSED_CODES = (FORBIDDEN, READ_ONLY)


def _is_mutation_field(info: Any) -> bool:
    return info.parent_type is info.schema.mutation_type and not info.field_name.startswith("__")


class AuthorizeMiddleware:
    """Refuse a mutation the principal's role does not allow, as a whole (``code: FORBIDDEN``)."""

    def resolve(self, next_, root: Any, info: Any, **kwargs: Any) -> Any:
        if _is_mutation_field(info):
            principal = current_principal()
            action = MUTATION_ACTIONS.get(info.field_name)
            if action is None and principal.role < Role.ADMIN:
                return refused_payload(FORBIDDEN, f"{info.field_name} has no role mapped to it: only admins "
                                                  "may use it")
            if action is not None and principal.role < action.role:
                return refused_payload(FORBIDDEN, principal.refusal(action))
        return next_(root, info, **kwargs)


def _get(answer: Any, name: str) -> Any:
    return answer.get(name) if isinstance(answer, dict) else getattr(answer, name, None)


def _target(field: str, args: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(target, location named by the arguments, details)`` of a mutation from its arguments."""
    details: dict[str, Any] = {}
    if args.get("run_ids") is not None:
        ids = list(dict.fromkeys(args["run_ids"]))
        details["runs"] = len(ids)
        shown = ids[:MAX_TARGET_IDS]
        return ",".join(shown) + (f",... ({len(ids)} runs)" if len(ids) > len(shown) else ""), None, details
    if args.get("run_id") is not None:
        return str(args["run_id"]), None, details
    if args.get("backfill_id") is not None:  # cancelBackfill, retryBackfill (docs/backfills.md)
        return str(args["backfill_id"]), None, details
    params = args.get("execution_params")
    if params is not None and getattr(params, "selector", None) is not None:
        selector = params.selector
        job = selector.job_name or selector.pipeline_name
        location = selector.repository_location_name
        return f"{location}/{job}", location, details
    if args.get("job_name") is not None:
        return f"{args.get('location')}/{args['job_name']}", args.get("location"), details
    if args.get("repository_location_name") is not None:
        return args["repository_location_name"], args["repository_location_name"], details
    if field in ("reloadLocation",):
        return args.get("name"), args.get("name"), details
    if args.get("name") is not None:
        kind = args.get("kind") or ("schedule" if field.endswith("Schedule") else "sensor")
        details["kind"] = kind
        return args["name"], None, details
    return None, None, details


def _outcome(field: str, answer: Any, error: BaseException | None) -> tuple[str, str | None, str | None,
                                                                            dict[str, Any]]:
    """``(result, code, message, details)`` of a mutation's answer (or the exception it raised)."""
    if error is not None:
        return "failed", "ERROR", f"{type(error).__name__}: {error}", {}
    details: dict[str, Any] = {}
    run = _get(answer, "run")
    run_id = getattr(run, "run_id", None)
    if run_id is not None:
        details["run_id"] = run_id
    results = _get(answer, "results")
    if results:
        details["ok"] = sum(1 for r in results if getattr(r, "ok", False))
        details["refused"] = sum(1 for r in results if not getattr(r, "ok", False))
        new = [r.run.run_id for r in results if getattr(r, "ok", False) and getattr(r, "run", None) is not None]
        if new and field == "reexecuteRuns":  # the runs it made
            details["run_ids"] = new[:MAX_TARGET_IDS]
    ok = _get(answer, "ok") is True
    code, message = _get(answer, "code"), _get(answer, "message")
    if ok:
        return "ok", None, None, details
    if code in REFUSED_CODES or type(answer).__name__ == "UnauthorizedError":
        return "refused", code or FORBIDDEN, message, details
    return "failed", code, message, details


class AuditMiddleware:
    """Record every mutation in the audit log (see the module docstring)."""

    def __init__(self, web: WebContext):
        self.web = web

    def resolve(self, next_, root: Any, info: Any, **kwargs: Any) -> Any:
        if not _is_mutation_field(info):
            return next_(root, info, **kwargs)
        if has_request_context():
            g.audit_locations = []
        try:
            answer = next_(root, info, **kwargs)
        except Exception as exc:
            self.record(info.field_name, kwargs, None, exc)
            raise
        self.record(info.field_name, kwargs, answer, None)
        return answer

    def record(self, field: str, args: dict[str, Any], answer: Any, error: BaseException | None) -> None:
        from runyard.storage.records import AuditEntry

        try:
            principal = current_principal()
            target, location, details = _target(field, args)
            result, code, message, outcome = _outcome(field, answer, error)
            checked = g.get("audit_locations") if has_request_context() else None
            if checked:
                if len(checked) == 1:
                    location = checked[0]
                else:
                    details["locations"] = sorted(str(loc) for loc in checked)
            elif location is None and args.get("run_id") is not None:
                location = self._run_location(str(args["run_id"]))
            entry = AuditEntry(action=field, actor=principal.name, via=principal.via, role=principal.role.label,
                               result=result, timestamp=time.time(), target=target, location=location, code=code,
                               message=message, remote_addr=request.remote_addr if has_request_context() else None,
                               details={**details, **outcome})
            self.web.storage.add_audit_entry(entry)
        except Exception:  # noqa: BLE001 - the mutation already happened: it is answered regardless
            log.warning("could not write the audit entry of %s", field, exc_info=True)

    def _run_location(self, run_id: str) -> str | None:
        from runyard.tags import LOCATION_TAG

        run = self.web.storage.get_run(run_id)
        return run.tags.get(LOCATION_TAG) if run is not None else None


def mutation_middleware(web: WebContext) -> list[Any]:
    """The middlewares of a document holding a mutation, innermost first: the role check, the
    read-only refusal (which wins over it), the audit record around both."""
    from .security import ReadOnlyMiddleware

    return [AuthorizeMiddleware(), *([ReadOnlyMiddleware()] if web.settings.read_only else []), AuditMiddleware(web)]
