"""IO managers store op outputs and load them as downstream inputs, so steps can run in different
processes (or machines) and a re-execution can reuse a parent run's outputs.

The default, :class:`FilesystemIOManager`, pickles each output to
``<base_dir>/<run_id>/<step_key>/<output_name>`` (one value of a DynamicOut:
``<base_dir>/<run_id>/<step_key>/<output_name>/<mapping_key>``) where ``base_dir`` defaults to
``<RUNYARD_HOME>/storage``. Override the ``io_manager`` resource to change it.
"""

from __future__ import annotations

import os
import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ..private_files import make_private_dirs, open_private


@dataclass
class OutputContext:
    run_id: str
    step_key: str
    output_name: str
    home: str
    log: Any = None
    dagster_type: Any = None  # the annotation, kept for IO managers that dispatch on type
    #: the mapping key of one value of a DynamicOut (None for every other output)
    mapping_key: str | None = None


@dataclass
class InputContext:
    run_id: str
    step_key: str
    input_name: str
    home: str
    # where the value was produced (may be a parent run in a re-execution)
    upstream_run_id: str
    upstream_step_key: str
    upstream_output_name: str
    log: Any = None
    #: the mapping key of the upstream value when it is one value of a DynamicOut (a mapped step's
    #: input, or one item of a ``.collect()``); None otherwise
    upstream_mapping_key: str | None = None


class IOManager(ABC):
    @abstractmethod
    def handle_output(self, context: OutputContext, obj: Any) -> dict[str, Any] | None:
        """Store ``obj``; may return metadata (e.g. a path) recorded on the HANDLED_OUTPUT event."""

    @abstractmethod
    def load_input(self, context: InputContext) -> Any:
        """Load the value stored for the upstream output."""


class FilesystemIOManager(IOManager):
    def __init__(self, base_dir: str | None = None):
        self.base_dir = base_dir

    @staticmethod
    def delete_default_run_outputs(home: str, run_id: str) -> None:
        """Delete what the default instance of this IO manager (no ``base_dir``) stored for run
        ``run_id``: ``<home>/storage/<run_id>``. Called when a run is deleted with its files; an IO
        manager with its own ``base_dir`` keeps its data (runyard cannot know where a user's
        resources wrote)."""
        import shutil

        if run_id and os.sep not in run_id and run_id not in (".", ".."):
            shutil.rmtree(os.path.join(home, "storage", run_id), ignore_errors=True)

    def _path(self, home: str, run_id: str, step_key: str, output_name: str,
              mapping_key: str | None = None) -> str:
        base = self.base_dir or os.path.join(home, "storage")
        if mapping_key is not None:
            return os.path.join(base, run_id, step_key, output_name, mapping_key)
        return os.path.join(base, run_id, step_key, output_name)

    def handle_output(self, context: OutputContext, obj: Any) -> dict[str, Any]:
        path = self._path(context.home, context.run_id, context.step_key, context.output_name,
                          getattr(context, "mapping_key", None))
        make_private_dirs(os.path.dirname(path))  # outputs are the user's data: 0700 / 0600
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as f:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)  # readers never see a half-written file
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return {"path": path}

    def load_input(self, context: InputContext) -> Any:
        path = self._path(context.home, context.upstream_run_id, context.upstream_step_key,
                          context.upstream_output_name, getattr(context, "upstream_mapping_key", None))
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no stored value for output '{context.upstream_output_name}'"
                + (f" (mapping key '{context.upstream_mapping_key}')" if context.upstream_mapping_key else "")
                + " of step "
                f"'{context.upstream_step_key}' (run {context.upstream_run_id}) at {path}") from None
