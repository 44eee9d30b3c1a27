"""The queries ``viewer`` (who is asking and what they may do) and ``auditLog`` (what every
mutation did, newest first; admins only) — docs/auth.md."""

from __future__ import annotations

import json

import graphene

from .types import web


class Viewer(graphene.ObjectType):
    """Who sent this request. Root: a :class:`runyard.auth.Principal`."""

    name = graphene.String(required=True, description="What the audit log and the runyard/user tag record "
                                                      "(alice, token:ci; anonymous without webui.auth).")
    role = graphene.String(required=True, description="viewer, launcher, editor or admin.")
    via = graphene.String(required=True, description="basic, token, none (no webui.auth) or a plugin's word.")
    locations = graphene.List(graphene.NonNull(graphene.String), description="The code locations it is limited "
                                                                             "to; null: all.")
    permissions = graphene.List(graphene.NonNull(graphene.String), required=True,
                                description="The actions its role allows (launch_run, toggle_instigator...), "
                                            "whatever the code location.")
    can = graphene.Boolean(required=True, action=graphene.String(required=True), location=graphene.String(),
                           description="Whether it may do `action` (an action name, as in `permissions`) on "
                                       "something of code `location` (omitted: the role alone is asked).")

    resolve_role = staticmethod(lambda root, info: root.role.label)
    resolve_locations = staticmethod(lambda root, info: None if root.locations is None else sorted(root.locations))

    @staticmethod
    def resolve_permissions(root, info):
        from runyard.auth import Action

        return [a.label for a in Action if root.role >= a.role]

    @staticmethod
    def resolve_can(root, info, action, location=None):
        from graphql import GraphQLError

        from runyard.auth import Action

        from ..auth import ANY_LOCATION, refusal

        try:
            wanted = Action[action.strip().upper()]
        except KeyError:
            raise GraphQLError(f"unknown action '{action}': one of {', '.join(a.label for a in Action)}") from None
        return refusal(root, wanted, ANY_LOCATION if location is None else location, web(info)) is None


class AuditLogEntry(graphene.ObjectType):
    """One audited action. Root: a :class:`runyard.storage.records.AuditEntry`."""

    id = graphene.Int(required=True)
    timestamp = graphene.Float(required=True, description="Epoch seconds.")
    actor = graphene.String(required=True)
    via = graphene.String(required=True)
    role = graphene.String()
    action = graphene.String(required=True, description="The mutation's name (launchRun...), or what the "
                                                        "command line did (token.create...).")
    target = graphene.String(description="Run id(s), location/job, a schedule or sensor, a code location, "
                                         "a token id.")
    location = graphene.String()
    result = graphene.String(required=True, description="ok, refused (not allowed: role, code location, "
                                                        "read-only) or failed (allowed, but it did not succeed).")
    code = graphene.String()
    message = graphene.String()
    remote_addr = graphene.String()
    details = graphene.String(description="A JSON object: the new run id, counts of a bulk action...")

    resolve_result = staticmethod(lambda root, info: str(root.result))
    resolve_details = staticmethod(lambda root, info: json.dumps(root.details or {}, sort_keys=True))


class AuditLogPage(graphene.ObjectType):
    entries = graphene.List(graphene.NonNull(AuditLogEntry), required=True)
    has_more = graphene.Boolean(required=True, description="Older entries remain: ask again with "
                                                           "`beforeId` = the last entry's id.")


#: most entries of one auditLog page
MAX_AUDIT_PAGE = 500


def _resolve_audit_log(root, info, limit=50, before_id=None, actor=None, action=None, location=None,
                       result=None):
    from graphql import GraphQLError

    from runyard.auth import Action
    from runyard.storage.records import AuditFilter, AuditResult

    from ..auth import refusal

    ctx = web(info)
    # None, not ANY_LOCATION: the log spans every code location, so a principal limited to some
    # may not read it
    why = refusal(ctx.principal, Action.READ_AUDIT_LOG, None, ctx)
    if why is not None:
        raise GraphQLError(why, extensions={"code": "FORBIDDEN"})
    if result is not None and result not in {r.value for r in AuditResult}:
        raise GraphQLError(f"unknown result '{result}': one of {', '.join(r.value for r in AuditResult)}")
    limit = max(1, min(int(limit), MAX_AUDIT_PAGE))
    filters = AuditFilter(actor=actor or None, action=action or None, location=location or None,
                          result=result or None)
    entries = ctx.storage.get_audit_entries(filters, limit=limit + 1, before_id=before_id)
    return AuditLogPage(entries=entries[:limit], has_more=len(entries) > limit)


def audit_log_field() -> graphene.Field:
    return graphene.Field(
        AuditLogPage, resolver=_resolve_audit_log, limit=graphene.Int(default_value=50),
        before_id=graphene.Int(description="Entries older than this id (the next page)."),
        actor=graphene.String(), action=graphene.String(), location=graphene.String(),
        result=graphene.String(description="ok, refused or failed."),
        description="The audit log: every mutation (and token created or revoked), newest first, matching "
                    "every filter given. Needs role admin, unlimited by code location; anyone else gets a "
                    "FORBIDDEN error.")


def viewer_field() -> graphene.Field:
    return graphene.Field(Viewer, required=True, resolver=lambda root, info: web(info).principal,
                          description="Who sent this request and what they may do.")
