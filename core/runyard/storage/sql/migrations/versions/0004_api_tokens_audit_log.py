"""API tokens and the audit log: tables ``api_tokens`` and ``audit_log`` (docs/auth.md).

``api_tokens`` keeps each token's SHA-256 digest, never the token; ``audit_log`` one row per audited
action, read newest first by id and filtered by time, actor, action and code location through its
indexes. Both start empty: nothing to backfill.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from runyard.storage.sql.types import EventId, Key, LongText, Timestamp

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("token_id", Key(32), primary_key=True),
        sa.Column("name", Key(255), nullable=False),
        sa.Column("role", Key(16), nullable=False),
        sa.Column("locations", LongText()),
        sa.Column("digest", Key(128), nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("created_by", Key(255)),
        sa.Column("expires_at", Timestamp()),
        sa.Column("last_used_at", Timestamp()),
        sa.Column("revoked_at", Timestamp()),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("actor", Key(255), nullable=False),
        sa.Column("via", Key(64), nullable=False),
        sa.Column("role", Key(16)),
        sa.Column("action", Key(128), nullable=False),
        sa.Column("target", LongText()),
        sa.Column("location", Key(255)),
        sa.Column("result", Key(16), nullable=False),
        sa.Column("code", Key(64)),
        sa.Column("message", LongText()),
        sa.Column("remote_addr", Key(64)),
        sa.Column("details", LongText()),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_audit_log_timestamp", "audit_log", ["timestamp"])
    op.create_index("idx_audit_log_actor", "audit_log", ["actor", "id"])
    op.create_index("idx_audit_log_action", "audit_log", ["action", "id"])
    op.create_index("idx_audit_log_location", "audit_log", ["location", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
