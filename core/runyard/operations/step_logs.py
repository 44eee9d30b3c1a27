"""Read a step's captured stdout or stderr (its compute log, latest attempt) in chunks: what the web
UI's step log view and GraphQL ``stepLogs`` serve. Only files under this instance's compute log
directory are read, so a stored event cannot point a reader at any other file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import OperationError

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True, kw_only=True)
class StepOutput:
    """A chunk of captured output from ``offset``. ``available`` is False (with ``message`` saying
    why) when nothing was captured; ``finished``: nothing more will be appended after this chunk."""

    available: bool
    text: str = ""
    next_offset: int = 0
    finished: bool = False
    message: str | None = None


def read_step_output(instance: Instance, run_id: str, step_key: str, stream: str = "stdout", *,
                     offset: int = 0, max_bytes: int = 256 * 1024) -> StepOutput:
    from ..execution.compute_logs import captured_steps, read_chunk, step_finished, step_log_files

    if stream not in STREAMS:
        raise OperationError(f"unknown stream '{stream}': stdout or stderr")
    run = instance.get_run(run_id)
    event = captured_steps(instance.storage, run_id).get(step_key)
    manager = instance.compute_log_manager
    if event is None or manager is None:
        why = ("compute log capture is off for this instance (compute_logs.enabled: false)" if manager is None
               else f"no output was captured for step '{step_key}' (yet)")
        return StepOutput(available=False, finished=run.status.is_finished, message=why)
    path = os.path.realpath(step_log_files(event).path(stream))
    base = os.path.realpath(getattr(manager, "base_dir", "") or "/nonexistent")
    if os.path.commonpath([path, base]) != base:
        return StepOutput(available=False, finished=True,
                          message=f"the output was captured outside this instance's compute log directory ({path})")
    chunk = read_chunk(path, offset, max_bytes)
    text, used = decode_whole_chars(chunk)
    finished = run.status.is_finished or step_finished(instance.storage, run_id, step_key, event.id)
    return StepOutput(available=True, text=text, next_offset=offset + used,
                      finished=finished and used == len(chunk) and len(chunk) < max_bytes)


def decode_whole_chars(chunk: bytes) -> tuple[str, int]:
    """``chunk`` as text without a UTF-8 character cut at its end (left for the next read); returns
    (text, bytes used). Bytes that are not UTF-8 at all become U+FFFD."""
    for cut in range(0, min(4, len(chunk)) + 1):
        try:
            return chunk[:len(chunk) - cut].decode("utf-8"), len(chunk) - cut
        except UnicodeDecodeError as exc:
            if exc.start < len(chunk) - 4:  # broken in the middle: not a cut character
                break
    return chunk.decode("utf-8", errors="replace"), len(chunk)
