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
                 run_config: dict[str, Any], partitions_def: Any = None):
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
        #: the job's partitions (``PartitionsDefinition``), None for a job without
        self.partitions_def = partitions_def

    # ---- partitions (docs/partitions.md) ----------------------------------------------------------
    @property
    def has_partition_key(self) -> bool:
        """Whether the run is for a partition (it has the ``runyard/partition`` tag)."""
        from ..tags import PARTITION_TAG

        return PARTITION_TAG in (self.run_tags or {})

    @property
    def partition_key(self) -> str:
        """The partition the run is for; a :class:`runyard.errors.RunyardError` in a run that is not
        for a partition (check :attr:`has_partition_key` first when both can happen)."""
        from ..errors import RunyardError
        from ..tags import PARTITION_TAG

        key = (self.run_tags or {}).get(PARTITION_TAG)
        if key is None:
            raise RunyardError(f"op '{self.op_name}' asked for context.partition_key, but run {self.run_id} "
                               f"is not for a partition (it has no {PARTITION_TAG} tag: launch it with a "
                               "partition, e.g. `runyard job launch --partition KEY`)")
        return key

    @property
    def partition_time_window(self) -> Any:
        """The :class:`runyard.definitions.partitions.TimeWindow` of the run's partition; an error
        when the run is not for a partition or the job's partitions are not time windows."""
        from ..definitions.partitions import TimeWindowPartitionsDefinition
        from ..errors import RunyardError

        key = self.partition_key
        if not isinstance(self.partitions_def, TimeWindowPartitionsDefinition):
            raise RunyardError(f"op '{self.op_name}' asked for context.partition_time_window, but the job's "
                               f"partitions ({self.partitions_def!r}) are not time windows")
        return self.partitions_def.time_window_for_partition_key(key)

    # ---- dynamic fan-out (docs/dynamic-outputs.md) -------------------------------------------------
    def get_mapping_key(self) -> str | None:
        """The mapping key of a mapped step (``square[a]`` -> ``"a"``); None for any other step."""
        from ..definitions.dynamic import split_step_key

        return split_step_key(self.step_key)[1]

    def __repr__(self) -> str:
        return f"<OpContext run={self.run_id} step={self.step_key} attempt={self.retry_number + 1}>"
