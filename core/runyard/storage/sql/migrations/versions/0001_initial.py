"""The initial schema: runs and tags, events, schedule/sensor state and ticks, run keys, daemon
heartbeats and leases, key-value.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("job_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("run_config", sa.Text, nullable=False),
        sa.Column("code_pointer", sa.Text, nullable=False),
        sa.Column("step_keys_to_execute", sa.Text),
        sa.Column("parent_run_id", sa.String(64)),
        sa.Column("root_run_id", sa.String(64)),
        sa.Column("launcher_info", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("start_time", sa.Float),
        sa.Column("end_time", sa.Float),
    )
    op.create_index("idx_runs_status", "runs", ["status", "created_at"])
    op.create_index("idx_runs_job", "runs", ["job_name", "created_at"])
    op.create_index("idx_runs_created", "runs", ["created_at"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("idx_run_tags_kv", "run_tags", ["key", "value"])
    op.create_table(
        "events",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("step_key", sa.String(255)),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_events_run", "events", ["run_id", "id"])
    op.create_table(
        "instigators",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ticks",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("instigator", sa.String(255), nullable=False),
        sa.Column("tick_time", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("instigator", "tick_time", name="uq_ticks_instigator_time"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "run_keys",
        sa.Column("instigator", sa.String(255), primary_key=True),
        sa.Column("run_key", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "daemon_heartbeats",
        sa.Column("daemon_id", sa.String(255), primary_key=True),
        sa.Column("loop", sa.String(64), primary_key=True),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("info", sa.Text),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "kv",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("kv", "leases", "daemon_heartbeats", "run_keys", "ticks", "instigators", "events",
                  "run_tags", "runs"):
        op.drop_table(table)
