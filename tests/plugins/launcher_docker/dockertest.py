"""Helpers of the Docker launcher and executor tests (imported by their modules and conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def launcher_settings(image: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """``run_launcher: docker`` for tests: the host network, the test's directory mounted at the same
    path (its definitions file and output files), a short grace period."""
    return {"docker": {"image": image, "network": "host", "volumes": [f"{tmp_path}:{tmp_path}"],
                       "grace_period_seconds": 3, **extra}}


def postgres_settings(url: str) -> dict[str, Any]:
    return {"postgres": {"url": url}}


def instance_label(instance) -> str:
    from runyard_launcher_docker.engine import INSTANCE_LABEL, instance_id

    return f"{INSTANCE_LABEL}={instance_id(instance)}"


def containers_of(client, instance, *, all: bool = True) -> list[Any]:
    # ignore_removed: a container removed between the listing and its inspection is simply gone
    return client.containers.list(all=all, filters={"label": instance_label(instance)}, ignore_removed=True)


def remove_containers_of(client, instance) -> list[str]:
    names = []
    for container in containers_of(client, instance):
        names.append(container.name)
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - gone already
            pass
    return names
