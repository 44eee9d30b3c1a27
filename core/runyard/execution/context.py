"""What an op sees at run time: :class:`OpContext` (``context`` parameter) and its logger."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from ..storage.records import EventType

if TYPE_CHECKING:  # pragma: no cover
    from .events import EventEmitter

_py_logger = logging.getLogger("runyard.user")
_py_logger.addHandler(logging.NullHandler())  # events carry the logs; no bare stderr lines by default


def _jsonable(value: Any) -> Any:
    """Log data is stored as JSON (and may cross a pipe): keep what JSON can hold, repr the rest."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


class StepLogger:
    """``context.log``: each call is a LOG event in the run's event log (and a Python log record)."""

    def __init__(self, sink: EventEmitter | None, step_key: str | None):
        self._sink = sink
        self._step_key = step_key

    def _log(self, level: str, msg: Any, *args: Any, **data: Any) -> None:
        text = str(msg) % args if args else str(msg)
        if self._sink is not None:
            self._sink.emit(EventType.LOG, text, step_key=self._step_key, level=level,
                            data={k: _jsonable(v) for k, v in data.items()} if data else None)
        _py_logger.log(logging.getLevelName(level), text)

    def debug(self, msg: Any, *args: Any, **data: Any) -> None:
        self._log("DEBUG", msg, *args, **data)

    def info(self, msg: Any, *args: Any, **data: Any) -> None:
        self._log("INFO", msg, *args, **data)

    def warning(self, msg: Any, *args: Any, **data: Any) -> None:
        self._log("WARNING", msg, *args, **data)

    warn = warning

    def error(self, msg: Any, *args: Any, **data: Any) -> None:
        self._log("ERROR", msg, *args, **data)

    def exception(self, msg: Any, *args: Any, **data: Any) -> None:
        import traceback

        self._log("ERROR", f"{msg % args if args else msg}\n{traceback.format_exc()}", **data)


class OpContext:
    """The ``context`` argument of an op."""

    def __init__(self, *, run_id: str, step_key: str, op_name: str, op_config: Any, resources: Any,
                 log: StepLogger, retry_number: int, run_tags: dict[str, str], home: str,
                 run_config: dict[str, Any]):
        self.run_id = run_id
        self.step_key = step_key
        self.op_name = op_name
        self.op_config = op_config
        self.resources = resources
        self.log = log
        self.retry_number = retry_number
        self.run_tags = run_tags
        self.home = home
        self.run_config = run_config

    def __repr__(self) -> str:
        return f"<OpContext run={self.run_id} step={self.step_key} attempt={self.retry_number + 1}>"
