"""A database at an older schema revision, holding what a runyard of that revision stored: what the
migration checks (``run_page_reads``, ``access``) upgrade from."""

from __future__ import annotations

import json
from typing import Any


def schema_with_old_run(engine: Any, revision: str, status: str) -> Any:
    """Create the schema at ``revision`` and store, as raw SQL like a runyard of that revision did, a
    run ``old-run`` of job ``etl`` in ``status`` (created at 100.0). Returns the ``events`` table,
    described with only the columns every revision has, for the caller's old events."""
    import sqlalchemy as sa

    from ..storage.sql.migrations import upgrade

    with engine.begin() as conn:
        upgrade(conn, revision)
    md = sa.MetaData()
    runs = sa.Table("runs", md, *(sa.Column(c) for c in (
        "run_id", "job_name", "status", "run_config", "code_pointer", "launcher_info", "created_at",
        "updated_at", "priority")))
    with engine.begin() as conn:
        conn.execute(runs.insert().values(run_id="old-run", job_name="etl", status=status, run_config="{}",
                                          code_pointer=json.dumps({"python_file": "/x/defs.py"}),
                                          launcher_info="{}", created_at=100.0, updated_at=100.0, priority=0))
    return sa.Table("events", md, *(sa.Column(c) for c in (
        "run_id", "event_type", "timestamp", "step_key", "level", "message", "data")))
