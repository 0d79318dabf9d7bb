"""provider_calls.workspace_id, and the indexes that keep the scorecard, ``fastest``
routing and the retention sweeper bounded

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Whose job the call was: a provider's error text is shown only to that workspace.
    # Calls recorded before this revision have none, so their text is shown to nobody.
    with op.batch_alter_table("provider_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workspace_id", sa.String(length=40), nullable=True))
    op.create_index("ix_provider_calls_workspace_id", "provider_calls", ["workspace_id"])
    # The latency sample and the last error: one provider's newest calls of one outcome.
    op.create_index(
        "ix_provider_calls_provider_outcome_started",
        "provider_calls",
        ["provider", "outcome", "started_at"],
    )
    # Retention deletes the oldest rows first, in batches.
    op.create_index("ix_provider_calls_started_at", "provider_calls", ["started_at"])
    op.create_index("ix_job_events_created_at", "job_events", ["created_at"])
    op.create_index("ix_webhook_deliveries_finished_at", "webhook_deliveries", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_finished_at", table_name="webhook_deliveries")
    op.drop_index("ix_job_events_created_at", table_name="job_events")
    op.drop_index("ix_provider_calls_started_at", table_name="provider_calls")
    op.drop_index("ix_provider_calls_provider_outcome_started", table_name="provider_calls")
    op.drop_index("ix_provider_calls_workspace_id", table_name="provider_calls")
    with op.batch_alter_table("provider_calls", schema=None) as batch_op:
        batch_op.drop_column("workspace_id")
