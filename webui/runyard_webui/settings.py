"""The instance file's ``webui:`` block. Every key has a default; command-line options win."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BasicAuthSettings(_Strict):
    username: str = Field(min_length=1)
    password: str = Field(min_length=1, description="Use {env: NAME}: the file then holds no secret.")


class WebuiSettings(_Strict):
    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 for every interface.")
    port: int = Field(3000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    threads: int = Field(8, ge=1, le=256, description="Request threads. Each holds at most one storage "
                         "connection at a time, so keep the storage pool at least this large.")
    read_only: bool = Field(False, description="Refuse every mutation (launch, terminate, delete, "
                            "schedule and sensor toggles): a window onto production.")
    auth: BasicAuthSettings | None = Field(None, description="HTTP basic auth for every page and the API.")
    long_poll_seconds: float = Field(20, gt=0, le=120, description="Longest time one `runEvents` call "
                                     "waits for new events before answering empty.")


def load_webui_settings(instance: Any, overrides: dict[str, Any] | None = None) -> WebuiSettings:
    """The ``webui:`` block of ``instance``'s file, ``{env: ...}`` resolved, with ``overrides`` (from
    command-line options; None values ignored) applied on top. Errors name the file and key path."""
    from runyard.config_models import validate_model
    from runyard.instance.env import resolve_env

    raw = resolve_env(instance.settings.webui, source=instance.doc.source, path=("webui",), lines=instance.doc)
    raw = dict(raw or {})
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate_model(WebuiSettings, raw, source=instance.doc.source, path=("webui",), doc=instance.doc)
