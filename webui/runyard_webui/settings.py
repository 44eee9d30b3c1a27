"""The instance file's ``webui:`` section, owned by this plugin. Every key has a default;
command-line options win.

The section is registered through ``runyard_register_instance_sections`` (see :mod:`.plugin`), so
core validates it when the instance file loads, with errors naming file, line and key path, and
``runyard instance info`` shows it with the password masked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

SECTION = "webui"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserSettings(_Strict):
    """One basic-auth user of ``webui.auth.users``."""

    username: str = Field(min_length=1)
    password: SecretStr = Field(min_length=1, description="Use {env: NAME}: the file then holds no secret.")
    role: str = Field("viewer", description="viewer, launcher, editor or admin (docs/auth.md).")
    locations: list[str] | None = Field(None, min_length=1, description="Code locations this user is limited "
                                        "to; absent: all.")

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        from runyard.auth import AuthError, Role

        try:
            return Role.parse(value).label
        except AuthError as exc:
            raise ValueError(str(exc)) from None


class AuthSettings(_Strict):
    """``webui.auth``: who may log in. ``username``/``password`` (one admin user, as before roles
    existed) and ``users`` (each with a role) are basic-auth users; ``tokens`` accepts API tokens
    (``Authorization: Bearer``). A block with neither users nor username accepts tokens only."""

    username: str | None = Field(None, min_length=1, description="One basic-auth user with role admin.")
    password: SecretStr | None = Field(None, min_length=1, description="Use {env: NAME}: the file then holds "
                                       "no secret.")
    users: list[UserSettings] = Field(default_factory=list, description="Basic-auth users, each with a role "
                                      "and optionally the code locations it is limited to.")
    tokens: bool = Field(True, description="Accept API tokens (`runyard auth token create`) as "
                         "`Authorization: Bearer`.")

    @model_validator(mode="after")
    def _consistent(self) -> AuthSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together (or neither, with users or tokens)")
        names = [u.username for u in self.users] + ([self.username] if self.username else [])
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"user {', '.join(twice)} is defined more than once")
        if not names and not self.tokens:
            raise ValueError("nobody could log in: give username/password or users, or leave tokens on")
        return self

    def all_users(self) -> list[UserSettings]:
        """Every basic-auth user: ``users``, and ``username`` as an admin."""
        legacy = [UserSettings(username=self.username, password=self.password, role="admin")] \
            if self.username and self.password else []
        return [*self.users, *legacy]


#: the name this block had when it held one user (kept for code written against it)
BasicAuthSettings = AuthSettings


class WebuiSettings(_Strict):
    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 for every interface.")
    port: int = Field(3000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    threads: int = Field(8, ge=1, le=256, description="Request threads. Each holds at most one storage "
                         "connection at a time, so keep the storage pool at least this large.")
    read_only: bool = Field(False, description="Refuse every mutation (launch, terminate, delete, "
                            "schedule and sensor toggles): a window onto production.")
    auth: AuthSettings | None = Field(None, description="Who may log in (basic-auth users with roles, API "
                                      "tokens); absent: nobody is asked and everyone is admin (docs/auth.md).")
    long_poll_seconds: float = Field(20, gt=0, le=120, allow_inf_nan=False, description="Longest time one "
                                     "`runEvents` call waits for new events before answering empty.")
    allowed_hosts: list[str] | None = Field(None, description="Host names (a leading dot: a domain and its "
                                            "subdomains; `*`: any) accepted in the `Host` header, besides the "
                                            "loopback names and the bound host. Guards against DNS rebinding.")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics (behind webui.auth "
                                  "when it is set; docs/metrics.md).")
    # ---- limits: one client cannot take the web UI down -------------------------------------------
    max_body_bytes: int = Field(4 << 20, ge=1024, le=1 << 30, description="Largest request body; larger "
                                "ones are refused (413) from their headers, before they are read.")
    max_query_tokens: int = Field(5000, ge=100, le=1_000_000, description="Most lexical tokens in one GraphQL "
                                  "document: parsing stops there, so a huge query costs no more than this.")
    max_query_depth: int = Field(15, ge=2, le=100, description="Deepest field nesting of one GraphQL query.")
    max_aliases: int = Field(30, ge=0, le=10_000, description="Most aliased fields in one GraphQL query.")
    max_fields: int = Field(1000, ge=10, le=100_000, description="Most fields in one GraphQL query, "
                            "fragments expanded.")
    max_query_cost: int = Field(100_000, ge=100, le=100_000_000, description="Highest estimated cost of one "
                                "GraphQL query: each field counts once per item its enclosing lists may return.")
    max_variables_depth: int = Field(32, ge=2, le=200, description="Deepest nesting of a request's JSON "
                                     "variables.")
    max_long_polls: int = Field(4, ge=0, le=256, description="Long polls waiting at once in this process, "
                                "never more than threads - 1; one that finds no free slot answers at once.")
    connection_limit: int = Field(1000, ge=1, le=10_000, description="Open connections served at once "
                                  "(open live pages included); more wait to be accepted.")
    channel_timeout_seconds: float = Field(30, gt=0, le=3600, allow_inf_nan=False, description="An idle "
                                           "connection (or one whose request never completes) is closed after "
                                           "this long.")
    cleanup_interval_seconds: float = Field(10, gt=0, le=3600, allow_inf_nan=False, description="How often idle "
                                            "connections are looked for.")
    # ---- live updates (server-sent events; no request thread per open page) ------------------------
    max_live_streams: int = Field(800, ge=0, le=10_000, description="Live pages (server-sent event streams) "
                                  "open at once in this process; one more is refused (503) and its page "
                                  "tries again. Keep it below connection_limit so other requests still get in.")
    live_heartbeat_seconds: float = Field(15, gt=0, le=600, allow_inf_nan=False, description="A quiet live "
                                          "stream gets a comment line this often (at most half of "
                                          "channel_timeout_seconds), so proxies and the idle timeout keep it "
                                          "open and a client that went away is noticed.")

    def long_poll_slots(self) -> int:
        """Long polls allowed at once: one request thread always stays free for everything else."""
        return max(0, min(self.max_long_polls, self.threads - 1))


def load_webui_settings(instance: Any, overrides: dict[str, Any] | None = None) -> WebuiSettings:
    """The ``webui:`` section of ``instance`` (validated by core when the file loaded) with
    ``overrides`` (from command-line options; None values ignored) applied on top and validated
    again, so a bad option names the key like a bad file value would."""
    from runyard.config_models import validate_model

    settings = instance.section(SECTION)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not given:
        return settings
    # Only the keys the file set, plus the options: unset keys keep their defaults.
    raw = {**settings.model_dump(exclude_unset=True), **given}
    return validate_model(WebuiSettings, raw, source=instance.doc.source, path=(SECTION,), doc=instance.doc)
