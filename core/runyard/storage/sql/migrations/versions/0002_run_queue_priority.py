"""Run queue claims: ``runs.priority`` and the index the claim query reads.

``claim_queued_runs`` takes QUEUED runs highest ``runyard/priority`` tag first, then oldest. The tag
lives in ``run_tags`` as text; this revision keeps it as an int column on ``runs`` (filled from the
existing tags) with an index in claim order, so a claim (``... WHERE status = 'QUEUED' ORDER BY
priority DESC, created_at LIMIT n FOR UPDATE SKIP LOCKED`` on Postgres) reads the first rows of an
index instead of sorting the queue.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from runyard.tags import PRIORITY_TAG

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
    op.create_index("idx_runs_queue", "runs", ["status", sa.text("priority DESC"), "created_at"])
    # Backfill from the tag. Parsing happens here (not in SQL) so that every dialect treats a value
    # that is not an integer the same way as runyard.storage.base.run_priority: as 0.
    conn = op.get_bind()
    run_tags = sa.table("run_tags", sa.column("run_id", sa.String), sa.column("key", sa.String),
                        sa.column("value", sa.Text))
    runs = sa.table("runs", sa.column("run_id", sa.String), sa.column("priority", sa.Integer))
    rows = conn.execute(sa.select(run_tags.c.run_id, run_tags.c.value)
                        .where(run_tags.c.key == PRIORITY_TAG)).all()
    updates = []
    for run_id, value in rows:
        try:
            priority = max(-(2**31), min(2**31 - 1, int(str(value).strip())))
        except ValueError:
            continue
        if priority:
            updates.append({"rid": run_id, "p": priority})
    if updates:
        conn.execute(runs.update().where(runs.c.run_id == sa.bindparam("rid"))
                     .values(priority=sa.bindparam("p")), updates)


def downgrade() -> None:
    op.drop_index("idx_runs_queue", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("priority")
