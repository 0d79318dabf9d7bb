"""moderation_decisions: what the moderation pipeline refused

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "moderation_decisions",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("end_user", sa.String(length=200), nullable=True),
        sa.Column("excerpt", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    op.create_index(
        "ix_moderation_decisions_workspace_id", "moderation_decisions", ["workspace_id", "id"]
    )
    op.create_index("ix_moderation_decisions_created_at", "moderation_decisions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_moderation_decisions_created_at", table_name="moderation_decisions")
    op.drop_index("ix_moderation_decisions_workspace_id", table_name="moderation_decisions")
    op.drop_table("moderation_decisions")
