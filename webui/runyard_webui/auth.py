"""Who sent a request and what they may do (docs/auth.md): the web UI's side of
:mod:`runyard.auth`.

Every request but ``/healthz`` gets a :class:`~runyard.auth.Principal` in ``flask.g.principal``,
found in this order:

1. a plugin's ``runyard_web_authenticate`` hook (firstresult; raising
   :class:`~runyard.auth.AuthError` refuses with 401 and its message);
2. without ``webui.auth``: :data:`~runyard.auth.ANONYMOUS_ADMIN` (nobody is asked, as before roles
   existed; an ``Authorization`` header is ignored);
3. ``Authorization: Bearer <API token>``, checked against storage on every request (a revoke takes
   effect on the next one);
4. ``Authorization: Basic``, one of ``webui.auth``'s users (compared in constant time);
5. otherwise 401 with a ``WWW-Authenticate`` challenge.

Then one function says whether a principal may do an :class:`~runyard.auth.Action` (on something of a
code location): :func:`refusal`, which asks the principal's role and scope and then the plugins'
``runyard_web_authorize`` hooks. Mutations ask it through :meth:`runyard_webui.context.WebContext.check`;
pages through :func:`require` and the per-endpoint checks of :func:`_check_page` (a page of something
outside the principal's locations answers 404, as if it did not exist).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, abort, g, has_request_context, request

from runyard.auth import ANONYMOUS_ADMIN, Action, AuthError, Principal, Role

if TYPE_CHECKING:  # pragma: no cover
    from .context import WebContext
    from .settings import AuthSettings, UserSettings

log = logging.getLogger("runyard.webui.auth")

#: ``location`` of a check that is not about one code location (the audit log, a page as a whole):
#: only the role (and the plugins) are asked, not the principal's scope
ANY_LOCATION: Any = object()

#: the least role of each root field of GraphQL's Mutation type; a field missing here is refused
#: to everyone but admins (audit.AuthorizeMiddleware), so a mutation added later is never open
MUTATION_ACTIONS: dict[str, Action] = {
    "launchRun": Action.LAUNCH_RUN,
    "launchPipelineExecution": Action.LAUNCH_RUN,
    "reexecuteRun": Action.REEXECUTE_RUN,
    "reexecuteRuns": Action.REEXECUTE_RUN,
    "terminateRun": Action.TERMINATE_RUN,
    "terminateRuns": Action.TERMINATE_RUN,
    "dryRunInstigator": Action.DRY_RUN_INSTIGATOR,
    "startSchedule": Action.TOGGLE_INSTIGATOR,
    "stopSchedule": Action.TOGGLE_INSTIGATOR,
    "startSensor": Action.TOGGLE_INSTIGATOR,
    "stopSensor": Action.TOGGLE_INSTIGATOR,
    "deleteRun": Action.DELETE_RUN,
    "deleteRuns": Action.DELETE_RUN,
    "reloadLocation": Action.RELOAD_LOCATION,
    "reloadRepositoryLocation": Action.RELOAD_LOCATION,
    "shutdownRepositoryLocation": Action.SHUTDOWN_LOCATION,
    "launchBackfill": Action.LAUNCH_RUN,
    "retryBackfill": Action.LAUNCH_RUN,
    "cancelBackfill": Action.TERMINATE_RUN,
}

#: a token's ``last_used_at`` is written at most this often per token and process
TOUCH_SECONDS = 60.0


#: who a request is before authentication ran, in a web UI that asks (an error page of the Host
#: check): it sees no code location and may change nothing
NOBODY = Principal(name="nobody", role=Role.VIEWER, via="none", locations=frozenset())


def current_principal() -> Principal:
    """This request's principal: ``g.principal`` once authenticated; :data:`NOBODY` before that
    in a web UI with ``webui.auth`` (fail closed); :data:`~runyard.auth.ANONYMOUS_ADMIN` in one
    without, and outside a request (the Python API, tests calling the context directly)."""
    if not has_request_context():
        return ANONYMOUS_ADMIN
    principal = g.get("principal")
    if principal is not None:
        return principal
    from flask import current_app

    authenticator = current_app.extensions.get("runyard_auth")
    return ANONYMOUS_ADMIN if authenticator is None or authenticator.settings is None else NOBODY


def current_scope() -> list[str] | None:
    """The code locations this request's principal is limited to (sorted), None for all."""
    locations = current_principal().locations
    return None if locations is None else sorted(locations)


def refusal(principal: Principal, action: Action, location: Any = ANY_LOCATION, web: Any = None) -> str | None:
    """Why ``principal`` may not do ``action`` on something of ``location`` (a code location name,
    None for something without one, :data:`ANY_LOCATION` when the action is not about one), or None
    when it may: its role, then its scope, then every ``runyard_web_authorize`` hook (any False
    refuses; they see ``location`` None for :data:`ANY_LOCATION`)."""
    if principal.role < action.role:
        return principal.refusal(action)
    if location is not ANY_LOCATION and not principal.sees(location):
        return principal.refusal(action, location)
    from runyard.plugins import get_plugin_manager

    hook = get_plugin_manager().hook.runyard_web_authorize
    if hook.get_hookimpls():
        where = None if location is ANY_LOCATION else location
        answers = hook(principal=principal, action=action, location=where, web=web)
        if any(a is False for a in answers):
            return f"{principal.name} may not {action.label.replace('_', ' ')}" + \
                (f" in code location {where}" if where else "") + " (refused by an authorization plugin)"
    return None


def require(action: Action, location: Any = ANY_LOCATION) -> None:
    """For pages: abort with 403 unless this request's principal may do ``action`` (on something of
    ``location``)."""
    from flask import current_app

    why = refusal(current_principal(), action, location, current_app.config.get("RUNYARD_WEB"))
    if why is not None:
        abort(403, why)


def require_visible(location: str | None, what: str) -> None:
    """For pages: abort with 404 (as if ``what`` did not exist) when this request's principal may
    not see things of ``location``."""
    if not current_principal().sees(location):
        abort(404, f"no {what}")


# ---- authentication ----------------------------------------------------------------------------
def _unauthorized(message: str, challenge: str) -> Response:
    # plain text on /graphql too: HTTP clients (Dagster's among them) then report the 401 itself
    # rather than reading the body as a GraphQL answer
    return Response(message + "\n", 401, {"WWW-Authenticate": challenge, "Content-Type": "text/plain; charset=utf-8"})


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


class Authenticator:
    """The ``before_request`` hook that finds the principal (see the module docstring), plus what
    it remembers per process: when each token was last touched, which credentials were already
    warned about crossing plain HTTP."""

    def __init__(self, web: WebContext, settings: AuthSettings | None):
        self.web = web
        self.settings = settings
        self.users: list[UserSettings] = settings.all_users() if settings is not None else []
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}
        self._warned: set[tuple[str, str]] = set()

    @property
    def challenge(self) -> str:
        return 'Basic realm="runyard"' if self.users else 'Bearer realm="runyard"'

    def __call__(self) -> Response | None:
        if request.path == "/healthz":
            return None
        found = self._authenticate()
        if isinstance(found, Response):
            return found
        g.principal = found
        why = refusal(found, Action.READ, ANY_LOCATION, self.web)
        if why is not None:
            return _unauthorized(why, self.challenge) if found.via == "none" else _forbidden(why)
        return _check_page()

    def _authenticate(self) -> Principal | Response:
        from runyard.plugins import get_plugin_manager

        hook = get_plugin_manager().hook.runyard_web_authenticate
        if hook.get_hookimpls():
            try:
                found = hook(request=request, web=self.web)
            except AuthError as exc:
                return _unauthorized(str(exc), self.challenge)
            if found is not None:
                if not isinstance(found, Principal):
                    raise TypeError(f"runyard_web_authenticate returned {type(found).__name__}, not a "
                                    "runyard.auth.Principal or None")
                return found
        if self.settings is None:
            return ANONYMOUS_ADMIN
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            return self._from_token(credentials.strip())
        given = request.authorization
        if given is not None and given.type == "basic" and self.users:
            user = self._user(given.username or "", given.password or "")
            if user is not None:
                self._warn_plain_http("the password of user", user.username)
                return Principal(name=user.username, role=Role.parse(user.role), via="basic",
                                 locations=frozenset(user.locations) if user.locations is not None else None)
            return _unauthorized("wrong username or password", self.challenge)
        return _unauthorized("authentication required: " + (
            "basic auth (a webui.auth user) or an API token (Authorization: Bearer)" if self.users and
            self.settings.tokens else "basic auth (a webui.auth user)" if self.users else
            "an API token (Authorization: Bearer)"), self.challenge)

    def _user(self, username: str, password: str) -> UserSettings | None:
        """The user with these credentials. Every user is compared, so the time taken says nothing
        about which names exist."""
        found = None
        for user in self.users:
            name_ok = hmac.compare_digest(username.encode(), user.username.encode())
            password_ok = hmac.compare_digest(password.encode(), user.password.get_secret_value().encode())
            if name_ok and password_ok:
                found = user
        return found

    def _from_token(self, secret: str) -> Principal | Response:
        from runyard.auth import principal_for_token, token_problem, verify_token

        if not self.settings.tokens:
            return _unauthorized("API tokens are not accepted here (webui.auth.tokens is false)", self.challenge)
        now = time.time()
        storage = self.web.storage
        try:
            token = verify_token(storage, secret, now)
        except NotImplementedError as exc:
            return _unauthorized(f"API tokens cannot be checked: {exc}", self.challenge)
        if token is None:
            why = {"revoked": "the token was revoked", "expired": "the token has expired"}.get(
                token_problem(storage, secret, now) or "", "unknown token")
            return _unauthorized(f"invalid API token: {why}",
                                 f'Bearer realm="runyard", error="invalid_token", error_description="{_quoted(why)}"')
        with self._lock:
            due = now - self._touched.get(token.token_id, 0.0) >= TOUCH_SECONDS
            if due:
                self._touched[token.token_id] = now
        if due:
            try:
                storage.touch_api_token(token.token_id, now)
            except Exception:  # noqa: BLE001 - a usage stamp never refuses a request
                log.warning("could not record the use of API token %s", token.token_id, exc_info=True)
        self._warn_plain_http("API token", f"{token.name} ({token.token_id})")
        return principal_for_token(token)

    def _warn_plain_http(self, what: str, who: str) -> None:
        """Once per credential and process: a secret crossed plain HTTP from another machine."""
        from .security import is_loopback

        peer = request.remote_addr or ""
        if request.scheme != "http" or not peer or is_loopback(peer):
            return
        key = (what, who)
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("%s %s came over plain HTTP from %s: anyone on the way can read it and use it. Serve "
                    "the web UI behind a TLS proxy (docs/auth.md).", what, who, peer)


def _forbidden(message: str) -> Response:
    return Response(message + "\n", 403, {"Content-Type": "text/plain; charset=utf-8"})


# ---- pages: what each one shows, checked before it renders --------------------------------------
def _run_location(run_id: str) -> tuple[bool, str | None]:
    from flask import current_app

    from runyard.tags import LOCATION_TAG

    run = current_app.config["RUNYARD_WEB"].storage.get_run(run_id)
    return run is not None, (run.tags.get(LOCATION_TAG) if run is not None else None)


def _check_page() -> None:
    """404 for a page of a run, job, schedule or sensor outside the principal's code locations;
    403 for the audit log without the role. Unscoped principals skip the lookups."""
    endpoint, args = request.endpoint or "", request.view_args or {}
    if endpoint == "pages.audit":
        require(Action.READ_AUDIT_LOG, None)  # the log spans every code location: unscoped admins only
    principal = current_principal()
    if principal.locations is None:
        return None
    if "run_id" in args and endpoint.startswith(("pages.", "live.")):
        exists, location = _run_location(args["run_id"])
        if exists:
            require_visible(location, f"run with id '{args['run_id']}'")
    if "location" in args and endpoint.startswith("pages."):
        require_visible(args["location"], f"code location '{args['location']}'")
    from_run = request.args.get("from_run")
    if from_run and endpoint == "pages.launchpad":
        exists, location = _run_location(from_run)
        if exists:
            require_visible(location, f"run with id '{from_run}'")
    if endpoint == "pages.instigator" and {"kind", "name"} <= args.keys():
        from flask import current_app

        from .context import WebError

        try:
            row = current_app.config["RUNYARD_WEB"].automation_row(args["kind"], args["name"], scoped=False)
        except WebError:
            return None  # the page says it does not exist
        require_visible(row["location"], f"{args['kind']} named '{args['name']}'")
    if endpoint == "metrics":
        abort(403, f"{principal.name} is limited to code locations {', '.join(sorted(principal.locations))}: "
                   "the metrics describe every location, so they need an unscoped principal")
    return None


def install(app: Flask, web: WebContext) -> Authenticator:
    """Find the principal of every request, after the Host and Origin checks (security.install)."""
    authenticator = Authenticator(web, web.settings.auth)
    app.before_request(authenticator)
    app.extensions["runyard_auth"] = authenticator
    return authenticator
