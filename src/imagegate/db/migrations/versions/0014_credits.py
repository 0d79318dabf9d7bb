"""The credits ledger: an account per workspace and append-only entries

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_accounts",
        sa.Column("workspace_id", sa.String(length=40), primary_key=True),
        sa.Column("granted", sa.BigInteger(), nullable=False),
        sa.Column("charged", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("entry_key", sa.String(length=300), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("actor_key_id", sa.String(length=40), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace_id", "entry_key", name="uq_credit_entries_key"),
    )  # fmt: skip
    op.create_index("ix_credit_entries_workspace_id", "credit_entries", ["workspace_id", "id"])
    op.create_index("ix_credit_entries_job", "credit_entries", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_credit_entries_job", table_name="credit_entries")
    op.drop_index("ix_credit_entries_workspace_id", table_name="credit_entries")
    op.drop_table("credit_entries")
    op.drop_table("credit_accounts")
