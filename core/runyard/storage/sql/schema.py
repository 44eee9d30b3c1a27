"""Table definitions. Changing one means adding an Alembic revision under ``migrations/versions``
and bumping :data:`HEAD_REVISION` (a test checks the two agree)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

HEAD_REVISION = "0002"

metadata = MetaData()

# BigInteger ids on Postgres, INTEGER PRIMARY KEY (rowid alias) on SQLite.
EventId = BigInteger().with_variant(Integer(), "sqlite")

runs = Table(
    "runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("job_name", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("run_config", Text, nullable=False),        # JSON
    Column("code_pointer", Text, nullable=False),      # JSON
    Column("step_keys_to_execute", Text),              # JSON list or NULL for all
    Column("parent_run_id", String(64)),
    Column("root_run_id", String(64)),
    Column("launcher_info", Text, nullable=False),     # JSON, e.g. worker pid
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("start_time", Float),
    Column("end_time", Float),
    # 0002: the run's `runyard/priority` tag as an int (0 without one), so the queue is claimed in
    # priority order straight from an index.
    Column("priority", Integer, nullable=False, server_default="0"),
)
Index("idx_runs_status", runs.c.status, runs.c.created_at)
Index("idx_runs_queue", runs.c.status, runs.c.priority.desc(), runs.c.created_at)
Index("idx_runs_job", runs.c.job_name, runs.c.created_at)
Index("idx_runs_created", runs.c.created_at)

run_tags = Table(
    "run_tags", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)
Index("idx_run_tags_kv", run_tags.c.key, run_tags.c.value)

events = Table(
    "events", metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("step_key", String(255)),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", Text),                              # JSON or NULL
    sqlite_autoincrement=True,                         # ids never reused, even after deletes
)
Index("idx_events_run", events.c.run_id, events.c.id)

instigators = Table(
    "instigators", metadata,
    Column("name", String(255), primary_key=True),
    Column("kind", String(16), nullable=False),        # schedule | sensor
    Column("status", String(16), nullable=False),      # RUNNING | STOPPED
    Column("data", Text),                              # JSON: cursor, last tick...
    Column("updated_at", Float, nullable=False),
)

ticks = Table(
    "ticks", metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("instigator", String(255), nullable=False),
    Column("tick_time", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("data", Text, nullable=False),              # JSON: run ids, keys, cursor, reason, error
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("instigator", "tick_time", name="uq_ticks_instigator_time"),
    sqlite_autoincrement=True,
)

run_keys = Table(
    "run_keys", metadata,
    Column("instigator", String(255), primary_key=True),
    Column("run_key", String(255), primary_key=True),
    Column("run_id", String(64), nullable=False),
)

daemon_heartbeats = Table(
    "daemon_heartbeats", metadata,
    Column("daemon_id", String(255), primary_key=True),
    Column("loop", String(64), primary_key=True),
    Column("timestamp", Float, nullable=False),
    Column("info", Text),
)

leases = Table(
    "leases", metadata,
    Column("name", String(255), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
)

kv = Table(
    "kv", metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)
