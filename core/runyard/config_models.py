"""Turning raw config (dicts from YAML) into typed pydantic models, with errors that say where.

Errors name the file, line and key path, and show the rejected value only where that is safe: never
for a secret (a field typed :class:`pydantic.SecretStr`, ``SecretBytes`` or ``Secret[...]``, or named
like one: ``password``, ``token``...), never for a value whose key path cannot be followed through the
model, and with any password inside a URL masked. The file and line already point at the value.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Secret, SecretBytes, SecretStr, ValidationError

from .errors import ConfigError, ConfigProblem
from .instance.yaml_source import YamlDocument, format_path

# Key names that hold secrets whatever their type (a plugin that typed one as plain `str`).
_SECRET_NAME = re.compile(r"(^|_)(password|passwd|pwd|passphrase|secret|token|api_?key|credentials?|"
                          r"private_?key)($|_)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_UNKNOWN = object()
_SECRET = object()


def is_secret_name(name: str) -> bool:
    """Whether a config key's name says it holds a secret (``password``, ``api_token``...)."""
    return bool(_SECRET_NAME.search(name))


def mask_url_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced by ``***``."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def _members(tp: Any) -> list[Any]:
    """The alternatives of a type: a union's members, an Annotated type's inner type, else itself."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _members(get_args(tp)[0])
    if origin is Union or type(tp).__name__ == "UnionType":
        return [m for a in get_args(tp) for m in _members(a)]
    return [tp]


def _is_secret_type(tp: Any) -> bool:
    for member in _members(tp):
        cls = get_origin(member) or member
        if isinstance(cls, type) and issubclass(cls, (SecretStr, SecretBytes, Secret)):
            return True
        if any(_is_secret_type(a) for a in get_args(member) if a is not type(None)):
            return True
    return False


def _step(tp: Any, part: Any) -> Any:
    """The type one key path step below ``tp``: _SECRET, _UNKNOWN, or the type."""
    members = [m for m in _members(tp) if m is not type(None)]
    for member in members:
        origin = get_origin(member) or member
        args = get_args(member)
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            field = member.model_fields.get(part) or next(
                (f for f in member.model_fields.values() if f.alias == part), None)
            if field is not None:
                return _SECRET if is_secret_name(part) or _is_secret_type(field.annotation) else field.annotation
        elif isinstance(origin, type) and issubclass(origin, Mapping) and isinstance(part, str):
            return _SECRET if is_secret_name(part) else (args[1] if len(args) == 2 else Any)
        elif isinstance(origin, type) and issubclass(origin, (list, tuple, set, frozenset)) and isinstance(part, int):
            return args[0] if args else Any
    if len(members) > 1 and isinstance(part, str):  # pydantic names the union member it tried
        return tp
    return _UNKNOWN


def _value_shown(model: type[BaseModel], loc: tuple) -> bool:
    """Whether the input at ``loc`` may appear in a message: reachable, and no secret on the way.
    A whole config given as a scalar might be the secret itself (``postgres: hunter2``) when the
    model holds any."""
    if not loc:
        return not any(is_secret_name(name) or _is_secret_type(field.annotation)
                       for name, field in model.model_fields.items())
    tp: Any = model
    for part in loc:
        tp = _step(tp, part)
        if tp is _SECRET or tp is _UNKNOWN:
            return False
    return not _is_secret_type(tp)


def _kind_of(value: Any, wanted_string: bool) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        # YAML reads an unquoted 31415926535 as a number; converting it back could differ (0123 is 83)
        return "a number: quote it to make it a string" if wanted_string else "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"a {type(value).__name__}"


NOT_FINITE = "must be a finite number (not inf or NaN)"
_NUMBER_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of",
                  "finite_number"}


def _is_non_finite(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    if "input" not in err:
        return msg
    if kind in _NUMBER_BOUNDS and _is_non_finite(err["input"]):  # -inf is "not greater than 0", but why
        return NOT_FINITE
    value = err["input"]
    loc = tuple(err.get("loc", ()))
    if not _value_shown(model, loc):
        if not loc and isinstance(value, (dict, list)):  # the whole config: its keys are named already
            return msg
        wanted_string = kind == "string_type"
        return f"{msg} (got {_kind_of(value, wanted_string)}; value not shown)"
    if isinstance(value, (dict, list)):
        return msg
    if isinstance(value, str):
        return f"{msg} (got {mask_url_credentials(value)!r})"
    return f"{msg} (got {value!r})"


#: problems listed in one message; a file with 100,000 bad keys gets the first ones and a count
MAX_PROBLEMS_SHOWN = 20


def _non_finite(value: Any, path: tuple) -> list[tuple]:
    """Key paths below ``path`` holding inf or NaN, in a validated model, dict or list."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, BaseModel):
        return [p for name in type(value).model_fields for p in _non_finite(getattr(value, name), path + (name,))]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, path + (k,))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _non_finite(v, path + (i,))]
    return []


def _env_note(full: tuple, env_origins: Mapping[tuple, str] | None) -> str:
    """`` (from environment variable NAME)`` when the value at ``full`` (or below it, for a problem
    reported on a whole block) came from ``{env: NAME}``."""
    if not env_origins:
        return ""
    names = sorted({name for path, name in env_origins.items() if path[:len(full)] == full
                    or full[:len(path)] == path})
    if not names:
        return ""
    return f" (from environment variable{'s' if len(names) > 1 else ''} {', '.join(names)})"


def validate_model(model: type[BaseModel], data: Any, *, source: str, path: tuple = (),
                   doc: YamlDocument | None = None, error_cls: type[ConfigError] = ConfigError,
                   allow_inf_nan: bool = False, env_origins: Mapping[tuple, str] | None = None) -> BaseModel:
    """Validate ``data`` against ``model``; on failure raise one error naming the bad key paths (at
    most :data:`MAX_PROBLEMS_SHOWN` of them, then a count).

    Unless ``allow_inf_nan`` (op and resource config: the user's model decides), no number in the
    result may be inf or NaN, whatever the model says: an infinite interval or timeout silently
    disables what it times (or overflows the timer that takes it). ``env_origins`` maps key paths
    to the environment variables their values came from, so a bad value names its variable."""
    try:
        result = model.model_validate({} if data is None else data)
    except ValidationError as exc:
        errors = exc.errors()  # builds the list: once, not once per error
        problems = [(path + tuple(err.get("loc", ())), _describe(err, model))
                    for err in errors[:MAX_PROBLEMS_SHOWN]]
        _raise(problems, len(errors), source=source, doc=doc, error_cls=error_cls, env_origins=env_origins)
    if not allow_inf_nan:
        bad = _non_finite(result, ())
        if bad:
            _raise([(path + p, NOT_FINITE) for p in bad[:MAX_PROBLEMS_SHOWN]],
                   len(bad), source=source, doc=doc, error_cls=error_cls, env_origins=env_origins)
    return result


def _raise(problems: list[tuple[tuple, str]], total: int, *, source: str, doc: YamlDocument | None,
           error_cls: type[ConfigError], env_origins: Mapping[tuple, str] | None) -> typing.NoReturn:
    lines = []
    found = []  # the same, structured: a front end lists each at its key (ConfigError.problems)
    first_line = None
    for full, message in problems:
        line = doc.line_of(full) if doc else None
        first_line = first_line or line
        where = format_path(full) or "(top level)"
        suffix = f" (line {line})" if line and total > 1 else ""
        lines.append((where, f"{message}{_env_note(full, env_origins)}{suffix}"))
        found.append(ConfigProblem(message=f"{message}{_env_note(full, env_origins)}", path=where, keys=full,
                                   line=line))
    if total == 1:
        where, message = lines[0]
        raise error_cls(message, source=source, path=where, line=first_line, problems=found) from None
    head = "invalid config" if total <= len(lines) else \
        f"invalid config ({total:,} problems; the first {len(lines)})"
    more = [f"... and {total - len(lines):,} more"] if total > len(lines) else []
    raise error_cls(head + ":\n  " + "\n  ".join([f"{w}: {m}" for w, m in lines] + more), source=source,
                    line=first_line, problems=found, total=total) from None
