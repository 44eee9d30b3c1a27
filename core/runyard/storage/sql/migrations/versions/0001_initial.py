"""The initial schema: runs and tags, events, schedule/sensor state and ticks, run keys, daemon
heartbeats and leases, key-value.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from runyard.storage.sql.types import EventId, Key, LongText, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The shared column types: what every dialect gets here is what it always got on SQLite and
# PostgreSQL, and right on MySQL/MariaDB (double-precision times, LONGTEXT, binary collations).

def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", Key(64), primary_key=True),
        sa.Column("job_name", Key(255), nullable=False),
        sa.Column("status", Key(32), nullable=False),
        sa.Column("run_config", LongText(), nullable=False),
        sa.Column("code_pointer", LongText(), nullable=False),
        sa.Column("step_keys_to_execute", LongText()),
        sa.Column("parent_run_id", Key(64)),
        sa.Column("root_run_id", Key(64)),
        sa.Column("launcher_info", LongText(), nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.Column("start_time", Timestamp()),
        sa.Column("end_time", Timestamp()),
    )
    op.create_index("idx_runs_status", "runs", ["status", "created_at"])
    op.create_index("idx_runs_job", "runs", ["job_name", "created_at"])
    op.create_index("idx_runs_created", "runs", ["created_at"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", Key(64), primary_key=True),
        sa.Column("key", Key(255), primary_key=True),
        sa.Column("value", LongText(exact=True), nullable=False),
    )
    op.create_index("idx_run_tags_kv", "run_tags", ["key", "value"], mysql_length={"value": 255})
    op.create_table(
        "events",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("run_id", Key(64), nullable=False),
        sa.Column("event_type", Key(64), nullable=False),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("step_key", Key(255)),
        sa.Column("level", Key(16), nullable=False),
        sa.Column("message", LongText(), nullable=False),
        sa.Column("data", LongText()),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_events_run", "events", ["run_id", "id"])
    op.create_table(
        "instigators",
        sa.Column("name", Key(255), primary_key=True),
        sa.Column("kind", Key(16), nullable=False),
        sa.Column("status", Key(16), nullable=False),
        sa.Column("data", LongText()),
        sa.Column("updated_at", Timestamp(), nullable=False),
    )
    op.create_table(
        "ticks",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("instigator", Key(255), nullable=False),
        sa.Column("tick_time", Timestamp(), nullable=False),
        sa.Column("status", Key(16), nullable=False),
        sa.Column("data", LongText(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.UniqueConstraint("instigator", "tick_time", name="uq_ticks_instigator_time"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "run_keys",
        sa.Column("instigator", Key(255), primary_key=True),
        sa.Column("run_key", Key(255), primary_key=True),
        sa.Column("run_id", Key(64), nullable=False),
    )
    op.create_table(
        "daemon_heartbeats",
        sa.Column("daemon_id", Key(255), primary_key=True),
        sa.Column("loop", Key(64), primary_key=True),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("info", LongText()),
    )
    op.create_table(
        "leases",
        sa.Column("name", Key(255), primary_key=True),
        sa.Column("holder", Key(255), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", Timestamp(), nullable=False),
    )
    op.create_table(
        "kv",
        sa.Column("key", Key(255), primary_key=True),
        sa.Column("value", LongText(), nullable=False),
    )


def downgrade() -> None:
    for table in ("kv", "leases", "daemon_heartbeats", "run_keys", "ticks", "instigators", "events",
                  "run_tags", "runs"):
        op.drop_table(table)
