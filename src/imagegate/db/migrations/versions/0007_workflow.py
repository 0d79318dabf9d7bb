"""The Midjourney workflow: uploads, style presets, batches, and jobs' lineage

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("workspace_id", sa.String(length=40), sa.ForeignKey("workspaces.id"),
                  nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source_url", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    op.create_index("ix_uploads_workspace_id", "uploads", ["workspace_id", "id"])
    op.create_index("ix_uploads_created_at", "uploads", ["created_at"])
    op.create_table(
        "styles",
        sa.Column("workspace_id", sa.String(length=40), sa.ForeignKey("workspaces.id"),
                  primary_key=True),
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=True),
        sa.Column("base_style", sa.String(length=32), nullable=False),
        sa.Column("ratio", sa.String(length=16), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("provider_options", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("workspace_id", sa.String(length=40), sa.ForeignKey("workspaces.id"),
                  nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    op.create_index("ix_batches_workspace_id", "batches", ["workspace_id", "id"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("root_job_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("result_texts", sa.JSON(), nullable=True))
        batch_op.create_index("ix_jobs_workspace_parent", ["workspace_id", "parent_job_id", "id"])
        batch_op.create_index("ix_jobs_workspace_root", ["workspace_id", "root_job_id", "id"])
        batch_op.create_index("ix_jobs_batch", ["batch_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_batch")
        batch_op.drop_index("ix_jobs_workspace_root")
        batch_op.drop_index("ix_jobs_workspace_parent")
        batch_op.drop_column("result_texts")
        batch_op.drop_column("batch_id")
        batch_op.drop_column("root_job_id")
    op.drop_index("ix_batches_workspace_id", table_name="batches")
    op.drop_table("batches")
    op.drop_table("styles")
    op.drop_index("ix_uploads_created_at", table_name="uploads")
    op.drop_index("ix_uploads_workspace_id", table_name="uploads")
    op.drop_table("uploads")
