"""Events of one kind of one run: the index ``idx_events_run_type (run_id, event_type, id)``.

The run page folds a run's step states from its step events, and finds the plan the run worker
stored in the run's first engine event (:mod:`runyard.execution.plan`). Through ``idx_events_run
(run_id, id)`` both read every event of the run to keep a few: a 100,000-event run with 400 step
events read 100,000 rows. With the event type in the key they read only the rows they return, in
id order within each type.

Nothing to backfill: the index is built from the rows already there (on a large events table this
revision takes as long as building one index over it).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("idx_events_run_type", "events", ["run_id", "event_type", "id"])


def downgrade() -> None:
    op.drop_index("idx_events_run_type", "events")
