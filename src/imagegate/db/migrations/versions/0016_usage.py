"""Usage: images marked final, jobs by workspace and creation time

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("final", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_jobs_workspace_created", "jobs", ["workspace_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_workspace_created", table_name="jobs")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("final")
