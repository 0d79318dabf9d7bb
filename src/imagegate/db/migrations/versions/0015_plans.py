"""Plans: a workspace's assigned plan, and quota usage per period

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan", sa.String(length=64), nullable=True))
    op.create_table(
        "quota_usage",
        sa.Column("workspace_id", sa.String(length=40), primary_key=True),
        sa.Column("subject", sa.String(length=220), primary_key=True),
        sa.Column("period", sa.String(length=10), primary_key=True),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("quota_usage")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_column("plan")
