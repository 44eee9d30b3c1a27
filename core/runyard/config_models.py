"""Turning raw config (dicts from YAML) into typed pydantic models, with errors that say where."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ConfigError
from .instance.yaml_source import YamlDocument, format_path


def _describe(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = err.get("msg", "invalid value")
    if "input" in err and kind not in ("missing",):
        value = err["input"]
        if not isinstance(value, (dict, list)):
            return f"{msg} (got {value!r})"
    return msg


def validate_model(model: type[BaseModel], data: Any, *, source: str, path: tuple = (),
                   doc: YamlDocument | None = None, error_cls: type[ConfigError] = ConfigError) -> BaseModel:
    """Validate ``data`` against ``model``; on failure raise one error naming every bad key path."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        problems = []
        first_line = None
        for err in exc.errors():
            full = path + tuple(err.get("loc", ()))
            line = doc.line_of(full) if doc else None
            first_line = first_line or line
            where = format_path(full) or "(top level)"
            suffix = f" (line {line})" if line and len(exc.errors()) > 1 else ""
            problems.append(f"{where}: {_describe(err)}{suffix}")
        if len(problems) == 1:
            full_path, _, message = problems[0].partition(": ")
            raise error_cls(message, source=source, path=full_path, line=first_line) from None
        raise error_cls("invalid config:\n  " + "\n  ".join(problems), source=source,
                        line=first_line) from None
