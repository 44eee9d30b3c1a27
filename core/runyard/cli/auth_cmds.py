"""``runyard auth token create|list|revoke`` and ``runyard auth audit`` (docs/auth.md, docs/cli.md):
the work in :mod:`runyard.operations.tokens`. The CLI acts as the OS user, via ``cli``."""

from __future__ import annotations

import time

import click

from .common import echo_json, fmt_time, open_instance

VIA = "cli"


@click.group()
def auth() -> None:
    """API tokens and the audit log of the web UI's API."""


@auth.group()
def token() -> None:
    """Create, list and revoke API tokens (sent as `Authorization: Bearer ...`)."""


@token.command("create")
@click.argument("name")
@click.option("--role", required=True, metavar="ROLE",
              help="viewer, launcher, editor or admin (each may do what the ones before it may).")
@click.option("--location", "locations", multiple=True, metavar="LOCATION",
              help="Limit the token to this code location; repeat for several (default: all).")
@click.option("--expires-in", metavar="DURATION", help="Lifetime, e.g. 30d, 12h, 90m (default: never expires).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the token included).")
def create(name, role, locations, expires_in, as_json):
    """Create an API token NAME and print it, once: only its digest is stored."""
    from ..operations.tokens import create_token, parse_duration, token_row
    from ..tags import os_user

    seconds = parse_duration(expires_in) if expires_in is not None else None
    storage = open_instance().storage
    made, secret = create_token(storage, name, role, locations=locations, expires_in=seconds, actor=os_user(),
                                via=VIA)
    if as_json:
        echo_json({**token_row(made, made.created_at), "token": secret})
        return
    scope = f"code locations {', '.join(made.locations)}" if made.locations else "every code location"
    expires = f"expires {fmt_time(made.expires_at)}" if made.expires_at is not None else "never expires"
    click.echo(f"Created API token {made.token_id} '{made.name}': role {made.role.label}, {scope}, {expires}.")
    click.echo(f"\n    {secret}\n")
    click.echo("This is the only time the token is shown; store it now (a secret store, a CI secret).")
    click.echo("Send it with every request:  Authorization: Bearer <token>")


@token.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(show_all, as_json):
    """List API tokens, newest first (never the tokens themselves)."""
    from ..operations.tokens import supported, token_row

    storage = open_instance().storage
    now = time.time()
    rows = [token_row(t, now) for t in supported(storage.list_api_tokens, show_all)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No API tokens." if show_all else "No active API tokens (--all shows revoked ones).")
        return
    table = [("ID", "NAME", "ROLE", "LOCATIONS", "CREATED", "BY", "LAST USED", "EXPIRES", "STATUS")]
    for r in rows:
        status = r["status"] if r["revoked_at"] is None else f"revoked {fmt_time(r['revoked_at'])}"
        table.append((r["token_id"], r["name"], r["role"], ",".join(r["locations"] or ["*"]),
                      fmt_time(r["created_at"]), r["created_by"] or "-", fmt_time(r["last_used_at"]),
                      fmt_time(r["expires_at"]) if r["expires_at"] is not None else "never", status))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


@token.command("revoke")
@click.argument("id_or_name")
def revoke(id_or_name):
    """Revoke a token by its id (or by a name only one active token has); requests carrying it are
    refused from the next one on."""
    from ..operations.tokens import revoke_token
    from ..tags import os_user

    revoked = revoke_token(open_instance().storage, id_or_name, actor=os_user(), via=VIA)
    click.echo(f"Revoked API token {revoked.token_id} '{revoked.name}'.")


@auth.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000),
              help="How many entries, newest first.")
@click.option("--actor", help="Only entries by this actor (a user name, token:<name>, or an OS user).")
@click.option("--action", help="Only this action (a GraphQL mutation such as launchRun, or token.create).")
@click.option("--location", help="Only entries about this code location.")
@click.option("--result", type=click.Choice(["ok", "refused", "failed"]), help="Only entries with this result.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit(limit, actor, action, location, result, as_json):
    """Show the audit log, newest first: who did what, to what, when, and how it ended."""
    from ..operations.tokens import supported
    from ..storage.records import AuditFilter

    storage = open_instance().storage
    filters = AuditFilter(actor=actor, action=action, location=location, result=result)
    entries = supported(storage.get_audit_entries, filters, limit)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        click.echo("No audit entries.")
        return
    colors = {"ok": "green", "refused": "red", "failed": "yellow"}
    for e in entries:
        who = f"{e.actor} ({e.via}{', ' + e.role if e.role else ''})"
        what = " ".join(x for x in (e.action, e.target or "", f"[{e.location}]" if e.location else "") if x)
        result = click.style(str(e.result).ljust(7), fg=colors.get(str(e.result)))
        line = f"{fmt_time(e.timestamp)}  {result}  {who}  {what}"
        if e.code or e.message:
            line += f"  {e.code or ''}{': ' if e.code and e.message else ''}{e.message or ''}"
        click.echo(line)
