"""Checking a run config without launching it, for the launchpad's validation as you type (GraphQL
``validateRunConfig``): the YAML text is parsed here (a syntax error is located at its line and
column), the config is checked by the job's code location (every problem, each with its key path:
the web UI imports no user code), and each problem is placed at the line and column of its key in
the text the user wrote, so the editor can mark it there.

A key the text does not hold (a required field left out, a problem in the job's own default run
config) is placed at the deepest key on its path that the text holds, else nowhere (``line`` None).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from runyard.codeserver.protocol import ConfigErrorData
    from runyard.instance.yaml_source import YamlDocument
    from runyard.workspace.workspace import CodeLocation

YAML_SOURCE = "runConfigYaml"
#: the ``source`` of a problem found in the YAML text itself, and of a refused tag
SYNTAX, TAGS = "yaml", "tags"


@dataclass(frozen=True, kw_only=True)
class LocatedProblem:
    """One problem: ``message`` as the CLI prints it, ``reason`` without the key path, the key
    ``path`` (``ops.load.config.path``), ``source`` (``run config``, ``op selection``, ``yaml``,
    ``tags``) and, when the text shows where, its 1-based ``line`` and ``column``."""

    message: str
    reason: str | None = None
    path: str | None = None
    source: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, kw_only=True)
class RunConfigCheck:
    """What ``validateRunConfig`` answers: ``valid`` with no ``problems``, and the step keys the
    op selection runs (None: every step) when valid."""

    valid: bool
    problems: tuple[LocatedProblem, ...] = ()
    step_keys: tuple[str, ...] | None = None


class YamlSyntaxError(Exception):
    """The text is not YAML runyard reads; ``problem`` says where."""

    def __init__(self, problem: LocatedProblem):
        super().__init__(problem.message)
        self.problem = problem


def parse_run_config(text: str | None) -> tuple[Any, YamlDocument | None]:
    """The run config in ``text`` (through runyard's one YAML loader, with its limits) and its
    document (the line of every key); ``YamlSyntaxError`` when it does not parse."""
    from runyard.errors import ConfigError
    from runyard.instance.yaml_source import load_yaml_text

    if text is None or not text.strip():
        return {}, None
    try:
        doc = load_yaml_text(text, YAML_SOURCE)
    except ConfigError as exc:
        reason = exc.message.removeprefix("invalid YAML: ")
        where = f" at line {exc.line}" if exc.line else ""
        key = f" ({exc.path})" if exc.path else ""
        raise YamlSyntaxError(LocatedProblem(
            message=f"run config is not valid YAML{where}{key}: {reason}", reason=reason, path=exc.path,
            source=SYNTAX, line=exc.line, column=_syntax_column(text, exc.line))) from None
    return ({} if doc.data is None else doc.data), doc


def _syntax_column(text: str, line: int | None) -> int | None:
    """The column of a syntax error on ``line``: runyard's loader says the line; the text is parsed
    again (only after it failed, without building any value) to learn the column."""
    import yaml

    if line is None:
        return None
    try:
        yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is not None and min(mark.line + 1, text.count("\n") + 1) == line:
            return mark.column + 1
    except Exception:  # noqa: BLE001 - a limit the loader enforces (depth...): the line says enough
        return None
    return None


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _keys(error: ConfigErrorData) -> tuple:
    """The key path of ``error`` as keys: as the code server sent it, else read from ``path`` (an
    older server; a key holding a dot is then split)."""
    if error.keys is not None:
        return tuple(error.keys)
    if not error.path or error.path == "(top level)":
        return ()
    return tuple(m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PATH_PART.finditer(error.path))


def locate(keys: tuple, text: str, doc: YamlDocument | None) -> tuple[int | None, int | None]:
    """(line, column) of the deepest key of ``keys`` that the text holds, 1-based; (None, None) when
    it holds none of them."""
    if doc is None:
        return None, None
    lines = text.splitlines()
    while keys:
        line = doc.lines.get(keys)
        if line is None and isinstance(keys[-1], int):
            line = doc.lines.get(keys[:-1] + (str(keys[-1]),))
        if line is not None:
            row = lines[line - 1] if 0 < line <= len(lines) else ""
            key = keys[-1]
            at = row.find(str(key)) if not isinstance(key, int) else -1
            if at < 0:  # a list item, or a key written quoted or through an alias
                at = len(row) - len(row.lstrip(" -"))
            return line, at + 1
        keys = keys[:-1]
    return None, None


def check_run_config(loc: CodeLocation, job_name: str, text: str | None, ops: str | None = None,
                     tags: Mapping[str, str] | None = None, run_config: Any = None) -> RunConfigCheck:
    """Check the run config in ``text`` (or given as data in ``run_config``), the op selection
    ``ops`` and the user's ``tags`` against job ``job_name`` of ``loc``; every problem is reported.
    An unreachable code server raises :class:`~runyard.operations.errors.UnavailableError`."""
    from runyard.operations.launch import validate_on_location
    from runyard.tags import reserved_tag_message, reserved_tags

    tag_problems = [LocatedProblem(message=f"tags: {reserved_tag_message(tag)}", reason=reserved_tag_message(tag),
                                   path=tag, source=TAGS) for tag in reserved_tags(tags)]
    doc = None
    if run_config is None:
        try:
            run_config, doc = parse_run_config(text)
        except YamlSyntaxError as exc:
            return RunConfigCheck(valid=False, problems=(exc.problem, *tag_problems))
    if not isinstance(run_config, Mapping):
        reason = f"run config must be a mapping (got {_kind(run_config)})"
        return RunConfigCheck(valid=False, problems=(
            LocatedProblem(message=reason, reason=reason, source="run config",
                           line=1 if doc is not None else None, column=1 if doc is not None else None),
            *tag_problems))
    result = validate_on_location(loc, job_name, run_config, ops)
    problems = [_located(error, text or "", doc) for error in result.errors] + tag_problems
    if problems:
        return RunConfigCheck(valid=False, problems=tuple(problems))
    keys = result.step_keys_to_execute
    return RunConfigCheck(valid=True, step_keys=None if keys is None else tuple(keys))


def _located(error: ConfigErrorData, text: str, doc: YamlDocument | None) -> LocatedProblem:
    # only run config problems have a place in the text (an op selection's are about the ops field)
    line, column = locate(_keys(error), text, doc) if error.source == "run config" else (None, None)
    return LocatedProblem(message=error.message, reason=error.reason or error.message, path=error.path,
                          source=error.source, line=line, column=column)


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, Sequence) and not isinstance(value, str) else type(value).__name__


__all__ = ["LocatedProblem", "RunConfigCheck", "YamlSyntaxError", "check_run_config", "locate",
           "parse_run_config"]
