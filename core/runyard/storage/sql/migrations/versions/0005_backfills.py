"""Backfills: table ``backfills`` (docs/backfills.md).

One row per backfill: its job, code location and code pointer, its partition keys (JSON, in launch
order) and how many of them have a run (``submitted``, the cursor the daemon advances in the
transaction that creates a batch's runs). It starts empty: nothing to backfill from older data.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from runyard.storage.sql.types import Key, LongText, Timestamp

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfills",
        sa.Column("backfill_id", Key(64), primary_key=True),
        sa.Column("location", Key(255), nullable=False),
        sa.Column("job_name", Key(255), nullable=False),
        sa.Column("status", Key(16), nullable=False),
        sa.Column("partition_keys", LongText(), nullable=False),
        sa.Column("num_partitions", sa.Integer, nullable=False),
        sa.Column("submitted", sa.Integer, nullable=False),
        sa.Column("code_pointer", LongText(), nullable=False),
        sa.Column("tags", LongText(), nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.Column("error", LongText()),
        sa.Column("retry_of", Key(64)),
    )
    op.create_index("idx_backfills_status", "backfills", ["status", "created_at"])
    op.create_index("idx_backfills_created", "backfills", ["created_at"])


def downgrade() -> None:
    op.drop_table("backfills")
