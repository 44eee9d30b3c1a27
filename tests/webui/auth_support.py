"""Helpers of the role, token and audit tests (test_auth_*.py): a web UI serving two code locations
(``defs_webui`` and ``other``) behind basic-auth users of every role, and clients that send one
principal's credentials."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runyard import Instance
from runyard.auth import new_token
from runyard.storage.records import ApiToken

DEFS = Path(__file__).with_name("defs_webui.py")

OTHER_DEFS = '''
import runyard as ry


@ry.op
def tick(context) -> int:
    return 1


@ry.job
def other_job():
    tick()


other_nightly = ry.ScheduleDefinition(name="other_nightly", job=other_job, cron_schedule="0 4 * * *")
defs = ry.Definitions(jobs=[other_job], schedules=[other_nightly])
'''

#: username -> (password, role, locations)
USERS = {
    "vi": ("vi-pw", "viewer", None),
    "la": ("la-pw", "launcher", None),
    "ed": ("ed-pw", "editor", None),
    "ad": ("ad-pw", "admin", None),
    "sc": ("sc-pw", "launcher", ["other"]),
}
ROLES = {"viewer": "vi", "launcher": "la", "editor": "ed", "admin": "ad"}


def instance_yaml(extra: str = "", tokens: bool = True) -> str:
    lines = ["webui:", "  auth:", f"    tokens: {'true' if tokens else 'false'}", "    users:"]
    for name, (password, role, locations) in USERS.items():
        lines += [f"      - username: {name}", f"        password: {password}", f"        role: {role}"]
        if locations is not None:
            lines.append(f"        locations: [{', '.join(locations)}]")
    return "\n".join(lines) + "\n" + extra


def start_secured(start_webui, instance_file, tmp_path: Path, *args: str, extra: str = "", tokens: bool = True,
                  env: dict[str, str] | None = None):
    """A web UI with :data:`USERS`, serving defs_webui.py and other.py."""
    other = tmp_path / "other.py"
    other.write_text(OTHER_DEFS)
    instance_file(instance_yaml(extra, tokens))
    return start_webui("-f", str(other), *args, env=env)


class Client:
    """Requests to ``ui`` with one principal's ``Authorization`` header (or none)."""

    def __init__(self, ui, authorization: str | None):
        self.ui = ui
        self.authorization = authorization

    @classmethod
    def user(cls, ui, name: str, password: str | None = None) -> Client:
        password = USERS[name][0] if password is None else password
        return cls(ui, "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode())

    @classmethod
    def token(cls, ui, secret: str) -> Client:
        return cls(ui, f"Bearer {secret}")

    def request(self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, str, Any]:
        sent = dict(headers or {})
        if self.authorization:
            sent["Authorization"] = self.authorization
        req = urllib.request.Request(self.ui.url + path, data=body, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode(), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers

    def get(self, path: str) -> int:
        return self.request(path, headers={"Accept": "text/html"})[0]

    def gql_raw(self, query: str, variables: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        status, text, _ = self.request("/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                                       {"Content-Type": "application/json"})
        return status, json.loads(text)

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        status, body = self.gql_raw(query, variables)
        assert status == 200 and not body.get("errors"), (status, body)
        return body["data"]

    def launch(self, job: str = "hello", location: str = "defs_webui", config: Any = None) -> dict[str, Any]:
        return self.gql("""mutation($loc: String!, $job: String!, $cfg: GenericScalar) {
            launchRun(location: $loc, jobName: $job, runConfig: $cfg) {
              __typename ok code message run { runId status } } }""",
                        {"loc": location, "job": job, "cfg": config})["launchRun"]


def add_token(home: Path, name: str, role: str, locations: list[str] | None = None,
              expires_in: float | None = None) -> tuple[str, str]:
    """Store an API token as ``runyard auth token create`` does: ``(token id, secret)``."""
    made = new_token()
    instance = Instance.open(home=str(home))
    try:
        now = time.time()
        instance.storage.add_api_token(ApiToken(
            token_id=made.token_id, name=name, role=role, locations=tuple(locations) if locations else None,
            digest=made.digest, created_at=now, created_by="test",
            expires_at=now + expires_in if expires_in is not None else None))
    finally:
        instance.dispose()
    return made.token_id, made.secret


def with_storage(home: Path, fn):
    instance = Instance.open(home=str(home))
    try:
        return fn(instance.storage)
    finally:
        instance.dispose()


def hello_config() -> dict[str, Any]:
    return {"ops": {"greet": {"config": {"name": "auth"}}}}
