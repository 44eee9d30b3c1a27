"""Table definitions. Changing one means adding an Alembic revision under ``migrations/versions``
and bumping :data:`HEAD_REVISION` (a test checks the two agree).

Columns use the types of :mod:`.types` (never plain ``Float``/``Text``/``String``), which the
:class:`~.dialects.SqlDialect` of each database turns into what is right there: double-precision
times, text of at least 16 MiB, exact comparisons of keys, tags and run keys.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, UniqueConstraint

from .types import EventId, Key, LongText, Timestamp

HEAD_REVISION = "0005"

metadata = MetaData()

#: MySQL indexes a text column by a prefix only; 255 characters of a tag value (1020 bytes in
#: utf8mb4, with the 1020-byte key well under InnoDB's 3072-byte limit). The DDL comes from the
#: migrations (0001 passes it as ``mysql_length``); the model below leaves the option out because
#: any ``mysql_*`` argument makes SQLAlchemy import its MySQL dialect in every process (~11 ms and
#: 1.5 MiB in each run worker), whatever the database.
TAG_VALUE_INDEX_PREFIX = 255

runs = Table(
    "runs", metadata,
    Column("run_id", Key(64), primary_key=True),
    Column("job_name", Key(255), nullable=False),
    Column("status", Key(32), nullable=False),
    Column("run_config", LongText(), nullable=False),   # JSON
    Column("code_pointer", LongText(), nullable=False),  # JSON
    Column("step_keys_to_execute", LongText()),         # JSON list or NULL for all
    Column("parent_run_id", Key(64)),
    Column("root_run_id", Key(64)),
    Column("launcher_info", LongText(), nullable=False),  # JSON, e.g. worker pid
    Column("created_at", Timestamp(), nullable=False),
    Column("updated_at", Timestamp(), nullable=False),
    Column("start_time", Timestamp()),
    Column("end_time", Timestamp()),
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
    Column("run_id", Key(64), primary_key=True),
    Column("key", Key(255), primary_key=True),
    Column("value", LongText(exact=True), nullable=False),
)
Index("idx_run_tags_kv", run_tags.c.key, run_tags.c.value)

events = Table(
    "events", metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("run_id", Key(64), nullable=False),
    Column("event_type", Key(64), nullable=False),
    Column("timestamp", Timestamp(), nullable=False),
    Column("step_key", Key(255)),
    Column("level", Key(16), nullable=False),
    Column("message", LongText(), nullable=False),
    Column("data", LongText()),                         # JSON or NULL
    sqlite_autoincrement=True,                          # ids never reused, even after deletes
)
Index("idx_events_run", events.c.run_id, events.c.id)
# 0003: one kind of event of a run (step events, the plan event) without reading the others
Index("idx_events_run_type", events.c.run_id, events.c.event_type, events.c.id)

instigators = Table(
    "instigators", metadata,
    Column("name", Key(255), primary_key=True),
    Column("kind", Key(16), nullable=False),            # schedule | sensor
    Column("status", Key(16), nullable=False),          # RUNNING | STOPPED
    Column("data", LongText()),                         # JSON: cursor, last tick...
    Column("updated_at", Timestamp(), nullable=False),
)

ticks = Table(
    "ticks", metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("instigator", Key(255), nullable=False),
    Column("tick_time", Timestamp(), nullable=False),
    Column("status", Key(16), nullable=False),
    Column("data", LongText(), nullable=False),         # JSON: run ids, keys, cursor, reason, error
    Column("updated_at", Timestamp(), nullable=False),
    UniqueConstraint("instigator", "tick_time", name="uq_ticks_instigator_time"),
    sqlite_autoincrement=True,
)

run_keys = Table(
    "run_keys", metadata,
    Column("instigator", Key(255), primary_key=True),
    Column("run_key", Key(255), primary_key=True),
    Column("run_id", Key(64), nullable=False),
)

daemon_heartbeats = Table(
    "daemon_heartbeats", metadata,
    Column("daemon_id", Key(255), primary_key=True),
    Column("loop", Key(64), primary_key=True),
    Column("timestamp", Timestamp(), nullable=False),
    Column("info", LongText()),
)

leases = Table(
    "leases", metadata,
    Column("name", Key(255), primary_key=True),
    Column("holder", Key(255), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", Timestamp(), nullable=False),
)

kv = Table(
    "kv", metadata,
    Column("key", Key(255), primary_key=True),
    Column("value", LongText(), nullable=False),
)

# 0004: API tokens (their digests, never the tokens) and the audit log (docs/auth.md)
api_tokens = Table(
    "api_tokens", metadata,
    Column("token_id", Key(32), primary_key=True),
    Column("name", Key(255), nullable=False),
    Column("role", Key(16), nullable=False),
    Column("locations", LongText()),                    # JSON list, or NULL for every code location
    Column("digest", Key(128), nullable=False),
    Column("created_at", Timestamp(), nullable=False),
    Column("created_by", Key(255)),
    Column("expires_at", Timestamp()),
    Column("last_used_at", Timestamp()),
    Column("revoked_at", Timestamp()),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("timestamp", Timestamp(), nullable=False),
    Column("actor", Key(255), nullable=False),
    Column("via", Key(64), nullable=False),
    Column("role", Key(16)),
    Column("action", Key(128), nullable=False),
    Column("target", LongText()),
    Column("location", Key(255)),
    Column("result", Key(16), nullable=False),
    Column("code", Key(64)),
    Column("message", LongText()),
    Column("remote_addr", Key(64)),
    Column("details", LongText()),                      # JSON or NULL
    sqlite_autoincrement=True,                          # ids never reused, even after retention
)
# The log is read newest first (the primary key), by time range, and filtered by who, what and where.
Index("idx_audit_log_timestamp", audit_log.c.timestamp)
Index("idx_audit_log_actor", audit_log.c.actor, audit_log.c.id)
Index("idx_audit_log_action", audit_log.c.action, audit_log.c.id)
Index("idx_audit_log_location", audit_log.c.location, audit_log.c.id)

# 0005: backfills (docs/backfills.md): one row per backfill; its runs carry the runyard/backfill tag
backfills = Table(
    "backfills", metadata,
    Column("backfill_id", Key(64), primary_key=True),
    Column("location", Key(255), nullable=False),
    Column("job_name", Key(255), nullable=False),
    Column("status", Key(16), nullable=False),
    Column("partition_keys", LongText(), nullable=False),  # JSON list, in launch order
    Column("num_partitions", Integer, nullable=False),
    Column("submitted", Integer, nullable=False),          # partitions whose run exists (a cursor)
    Column("code_pointer", LongText(), nullable=False),    # JSON
    Column("tags", LongText(), nullable=False),            # JSON
    Column("created_at", Timestamp(), nullable=False),
    Column("updated_at", Timestamp(), nullable=False),
    Column("error", LongText()),
    Column("retry_of", Key(64)),
)
# the daemon reads the REQUESTED/CANCELING ones, oldest first; the list pages newest first
Index("idx_backfills_status", backfills.c.status, backfills.c.created_at)
Index("idx_backfills_created", backfills.c.created_at)
