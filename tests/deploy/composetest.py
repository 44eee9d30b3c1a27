"""Helpers of the compose tests (imported by conftest.py and the test modules): the compose project
under test with its own name, settings and DOCKER_CONFIG."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
CODE_IMAGE = "runyard:dev"
SERVICES_IMAGE = "runyard-services:dev"
PROJECT_LABEL = "com.docker.compose.project"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Compose:
    """``docker compose`` on deploy/compose with a unique project name, a private DOCKER_CONFIG and
    its own settings (``env``)."""

    def __init__(self, docker_config: Path, docker_host: str, env: dict[str, str], files: tuple[str, ...]):
        self.project = f"ryt{uuid.uuid4().hex[:10]}"
        self.files = files
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNYARD_", "POSTGRES_", "COMPOSE_"))}
        self.env.update(DOCKER_CONFIG=str(docker_config), DOCKER_HOST=docker_host, **env)

    def __call__(self, *args: str, check: bool = True, timeout: float = 300,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = ["docker", "compose", "-p", self.project]
        for f in self.files:
            cmd += ["-f", str(COMPOSE_DIR / f)]
        proc = subprocess.run([*cmd, *args], cwd=COMPOSE_DIR, env=env if env is not None else self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, (f"docker compose {' '.join(args)} exited {proc.returncode}\n"
                                          f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}")
        return proc

    def config(self) -> dict[str, Any]:
        return json.loads(self("config", "--format", "json").stdout)

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "60", check=False).stdout
