"""Compute logs: the stdout and stderr of every step attempt, captured to files.

Capture happens at the file-descriptor level: fds 1 and 2 of the process that runs the step are
pointed (``os.dup2``) at ``<base_dir>/<run_id>/<step_key>.out`` and ``.err`` for the attempt, so
``print()``, ``os.write(1, ...)``, C extensions and child processes all land there. The original
fds are restored exactly afterwards (the run worker's stdout may be the terminal of
``runyard job execute``). Files are opened in append mode, and each attempt starts with a header
line, so a retried step keeps every attempt's output in one file.

The :class:`~runyard.execution.step.StepRunner` captures around each attempt it runs (the
``in_process`` executor), or for a step process's whole life when an out-of-process executor asks
it to (``StepRunner.capture_logs``); either way one ``LOGS_CAPTURED`` event per attempt announces
the files, so viewers (``runyard run logs RUN_ID --step KEY``) can read them while the step runs.

The instance file chooses the manager (``compute_logs:``); ``local`` is the only kind today and
lives in core. Another kind implements :class:`ComputeLogManager` and is added to
:data:`COMPUTE_LOG_MANAGERS` (later: registered by a plugin hook, like the other components).
"""

from __future__ import annotations

import fcntl
import io
import os
import signal
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import RunyardError
from ..private_files import make_private_dirs, open_private
from ..storage.records import EventType

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.settings import ComputeLogsSettings
    from ..storage.base import RunStorage
    from ..storage.records import Event

STDOUT, STDERR = "stdout", "stderr"
DEFAULT_SUBDIR = os.path.join("logs", "compute")


@dataclass(frozen=True)
class StepLogFiles:
    """Where one step's output goes: what the ``LOGS_CAPTURED`` event announces."""

    stdout: str
    stderr: str

    def path(self, stream: str) -> str:
        return self.stderr if stream == STDERR else self.stdout


class ComputeLogManager(ABC):
    """Captures a step attempt's output and tells where it went."""

    #: the name selected in the instance file (``compute_logs: {<name>: {...}}``)
    name: ClassVar[str] = ""

    @abstractmethod
    def files(self, run_id: str, step_key: str) -> StepLogFiles:
        """Where this step's output is (or will be) written."""

    @abstractmethod
    @contextmanager
    def capture(self, run_id: str, step_key: str, attempt: int) -> Iterator[StepLogFiles]:
        """Capture this process's stdout and stderr for the body of the ``with`` block.

        ``attempt`` counts from 0. Raises ``OSError`` before capturing anything if the files
        cannot be opened."""

    def delete_run_files(self, run_id: str) -> None:  # noqa: B027 - optional hook
        """Delete every step's captured output of run ``run_id`` (the run is being deleted with its
        files). A missing file is not an error."""


class LocalComputeLogManager(ComputeLogManager):
    """Files on the local disk, under ``base_dir`` (default ``<home>/logs/compute``)."""

    name = "local"

    def __init__(self, base_dir: str):
        self.base_dir = base_dir

    def files(self, run_id: str, step_key: str) -> StepLogFiles:
        for part in (run_id, step_key):
            if not part or os.sep in part or part in (".", ".."):
                raise ValueError(f"cannot make a log file name from {part!r}")
        base = os.path.join(self.base_dir, run_id, step_key)
        return StepLogFiles(stdout=base + ".out", stderr=base + ".err")

    def delete_run_files(self, run_id: str) -> None:
        import shutil

        if run_id and os.sep not in run_id and run_id not in (".", ".."):
            shutil.rmtree(os.path.join(self.base_dir, run_id), ignore_errors=True)

    @contextmanager
    def capture(self, run_id: str, step_key: str, attempt: int) -> Iterator[StepLogFiles]:
        files = self.files(run_id, step_key)
        make_private_dirs(os.path.dirname(files.stdout))  # logs hold whatever ops print: 0700 / 0600
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        header = (f"=== runyard: step '{step_key}' of run {run_id}, attempt {attempt + 1}, "
                  f"pid {os.getpid()}, {stamp} ===\n")
        with capture_output(files.stdout, files.stderr, header=header):
            yield files


#: compute log manager kinds by name (core only for now)
COMPUTE_LOG_MANAGERS: dict[str, type[ComputeLogManager]] = {"local": LocalComputeLogManager}


def build_compute_log_manager(settings: ComputeLogsSettings, home: str) -> ComputeLogManager | None:
    """The manager the instance file selects, or None when capture is turned off."""
    name = settings.manager_name
    if name is None:
        return None
    if name == "local":
        local = settings.local
        base_dir = local.base_dir if local is not None and local.base_dir else DEFAULT_SUBDIR
        return LocalComputeLogManager(os.path.join(home, os.path.expanduser(base_dir)))
    raise RunyardError(f"unknown compute log manager '{name}'")  # pragma: no cover - settings check it


# --------------------------------------------------------------------------------------------------
# The capture itself
# --------------------------------------------------------------------------------------------------

_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _std_wrapper(stream: Any, fd: int) -> io.TextIOWrapper | None:
    """``stream`` if it is a text wrapper writing to ``fd`` (the normal sys.stdout), else None."""
    try:
        if isinstance(stream, io.TextIOWrapper) and stream.fileno() == fd:
            return stream
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


def _dup(fd: int) -> int | None:
    try:
        return os.dup(fd)
    except OSError:  # the process runs with this fd closed
        return None


def _open_append(path: str) -> int:
    """Open for appending, on an fd above 2 (so it never is the fd it will replace)."""
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    if fd <= 2:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(fd)
        fd = high
    return fd


def _restore(saved: list[tuple[int | None, int]]) -> None:
    for fd_copy, fd in saved:
        if fd_copy is None:
            try:
                os.close(fd)
            except OSError:
                pass
        else:
            os.dup2(fd_copy, fd)
            os.close(fd_copy)


@contextmanager
def capture_output(stdout_path: str, stderr_path: str, header: str = "") -> Iterator[None]:
    """Point fds 1 and 2 at these files (append) for the block, then restore them exactly.

    Python's ``sys.stdout`` and ``sys.stderr`` are flushed before and after, and ``sys.stdout``
    is line-buffered meanwhile so a reader sees each printed line while the step still runs.
    SIGTERM and SIGINT are held back while the fds are swapped, so a termination can interrupt the
    step but never leave the process writing to the wrong place.
    """
    _flush_std()
    targets: list[int] = []
    try:
        targets.append(_open_append(stdout_path))
        targets.append(_open_append(stderr_path))
        if header:
            for fd in targets:
                os.write(fd, header.encode())
    except BaseException:
        for fd in targets:
            os.close(fd)
        raise
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    saved: list[tuple[int | None, int]] = []
    stdout = _std_wrapper(sys.stdout, 1)
    line_buffering = stdout.line_buffering if stdout is not None else True
    try:
        for target, fd in zip(targets, (1, 2), strict=True):
            saved.append((_dup(fd), fd))
            os.dup2(target, fd)
        if stdout is not None and not line_buffering:
            stdout.reconfigure(line_buffering=True)
    except BaseException:
        _restore(saved)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    finally:
        for fd in targets:
            os.close(fd)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a pending SIGTERM is raised in here
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            _flush_std()
            if stdout is not None and not line_buffering:
                try:
                    stdout.reconfigure(line_buffering=False)
                except (OSError, ValueError):
                    pass
            _restore(saved)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


# --------------------------------------------------------------------------------------------------
# Reading: what viewers (the CLI, later the web UI) use
# --------------------------------------------------------------------------------------------------

_STEP_END = {str(EventType.STEP_SUCCESS), str(EventType.STEP_FAILURE), str(EventType.STEP_SKIPPED)}


def captured_steps(storage: RunStorage, run_id: str) -> dict[str, Event]:
    """step key -> the latest ``LOGS_CAPTURED`` event of that step, in first-capture order."""
    found: dict[str, Event] = {}
    for event in storage.get_events(run_id, event_types=[str(EventType.LOGS_CAPTURED)]):
        if event.step_key:
            found[event.step_key] = event
    return found


def step_log_files(event: Event) -> StepLogFiles:
    return StepLogFiles(stdout=event.data["stdout"], stderr=event.data["stderr"])


def step_finished(storage: RunStorage, run_id: str, step_key: str, after_id: int | None) -> bool:
    """True once the step's last attempt ended: a STEP_SUCCESS or STEP_FAILURE after ``after_id``
    (the id of its latest ``LOGS_CAPTURED``) and no newer attempt."""
    finished = False
    for event in storage.get_events(run_id, step_key=step_key, after_id=after_id):
        kind = str(event.event_type)
        if kind in _STEP_END:
            finished = True
        elif kind in (str(EventType.LOGS_CAPTURED), str(EventType.STEP_RESTARTED),
                      str(EventType.STEP_UP_FOR_RETRY)):
            finished = False
    return finished


def read_chunk(path: str, offset: int, max_bytes: int = 1 << 20) -> bytes:
    """Up to ``max_bytes`` of the file from ``offset`` (b"" if it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(max_bytes)
    except FileNotFoundError:
        return b""
