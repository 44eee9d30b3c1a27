"""The instance file's ``webui:`` section, owned by this plugin. Every key has a default;
command-line options win.

The section is registered through ``runyard_register_instance_sections`` (see :mod:`.plugin`), so
core validates it when the instance file loads, with errors naming file, line and key path, and
``runyard instance info`` shows it with the password masked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

SECTION = "webui"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BasicAuthSettings(_Strict):
    username: str = Field(min_length=1)
    password: SecretStr = Field(min_length=1, description="Use {env: NAME}: the file then holds no secret.")


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
