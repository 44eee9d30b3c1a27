"""Imported once by the fork server before it forks any step process.

The run worker puts the run's code pointer in ``RUNYARD_MP_CODE_POINTER`` before the fork server
starts; importing the user's definitions here means every step process is born with them (and
runyard, pydantic and the user's libraries) already imported.
"""

from __future__ import annotations

import json
import os

from runyard.execution import step as _step  # noqa: F401 - preload the step runner
from runyard.storage.records import CodePointer
from runyard.workspace.loader import load_definitions

POINTER_ENV = "RUNYARD_MP_CODE_POINTER"

_raw = os.environ.get(POINTER_ENV)
if _raw:
    try:
        load_definitions(CodePointer.from_dict(json.loads(_raw)))
    except Exception:  # noqa: BLE001 - the step process reports the same error with context
        pass
