"""Every error runyard raises on purpose derives from :class:`RunyardError`.

The CLI prints ``str(error)`` of these as one clear message and exits non-zero; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class RunyardError(Exception):
    """Base of all errors that carry a message meant for the user."""

    exit_code = 1


class ConfigError(RunyardError):
    """An instance file, workspace file or run config is malformed or invalid.

    ``source`` names the file (or "run config"), ``path`` the key path inside it, ``line`` the line
    when it is known.
    """

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None,
                 line: int | None = None, problems: Sequence[ConfigProblem] = (), total: int | None = None):
        self.message = message
        self.source = source
        self.path = path
        self.line = line
        #: every problem found, one per key path (a front end lists them: the web UI's launchpad, the
        #: code server's validate answer); an error raised for one problem holds that one
        self.problems: tuple[ConfigProblem, ...] = tuple(problems) or (
            ConfigProblem(message=message, path=path, line=line),)
        #: how many problems were found: more than ``problems`` holds when the list was cut short
        self.total = max(total or 0, len(self.problems))
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.source:
            where = self.source + (f", line {self.line}" if self.line else "")
        if self.path:
            where = f"{where}: {self.path}" if where else self.path
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True, kw_only=True)
class ConfigProblem:
    """One problem of a config: what is wrong (``message``) at which key ``path`` (``ops.load.config.path``,
    None for the whole document). ``keys`` is the same path as its keys and list indexes when known
    (``("ops", "load", "config", "path")``: to find the key in a YAML text), ``line`` its line when
    the document's lines are known."""

    message: str
    path: str | None = None
    keys: tuple[str | int, ...] | None = None
    line: int | None = None


class PluginError(RunyardError):
    """A component name is unknown, or a plugin failed to load."""

    exit_code = 2


class DefinitionError(RunyardError):
    """The user's definitions are invalid (cycle, missing input, duplicate name, bad cron...)."""


class DefinitionsLoadError(RunyardError):
    """A definitions file or module could not be imported; carries the user's traceback."""

    def __init__(self, message: str, user_traceback: str | None = None):
        self.user_traceback = user_traceback
        super().__init__(message)


class RunConfigError(ConfigError):
    """Run config failed validation against a job's schema; no run is created."""


class RunNotFoundError(RunyardError):
    def __init__(self, run_id: str):
        self.run_id = run_id
        super().__init__(f"No run with id '{run_id}' in this instance.")


class JobNotFoundError(RunyardError):
    def __init__(self, job_name: str, available: list[str]):
        names = ", ".join(sorted(available)) or "(none)"
        super().__init__(f"No job named '{job_name}'. Jobs defined here: {names}.")


class StorageError(RunyardError):
    """The storage could not be reached, or is at an unexpected schema revision."""


class SchemaRevisionError(StorageError):
    pass


class StorageUnavailableError(StorageError):
    """The database cannot be used right now — unreachable, restarting, pool exhausted, disk full or
    read-only — but may be later: a run worker waits such errors out (docs/run-worker.md)."""


class StorageOutageError(StorageError):
    """A run worker waited for unavailable storage longer than ``run_worker.outage_tolerance_seconds``;
    the message names the spill file holding the events it could not write."""

    exit_code = 3


class InvalidTransitionError(RunyardError):
    """A run is not in a status that allows the requested action."""
