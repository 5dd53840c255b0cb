"""Style-transfer jobs (issue 6).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "stylize_jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("content_image", sa.LargeBinary(), nullable=True),
        sa.Column("style_image", sa.LargeBinary(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("cost_content", sa.Float(), nullable=True),
        sa.Column("cost_style", sa.Float(), nullable=True),
        sa.Column("history", JSONType, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result_png", sa.LargeBinary(), nullable=True),
        sa.Column("result_path", sa.String(500), nullable=True),
        sa.Column("identity_distance", sa.Float(), nullable=True),
        sa.Column("identity_verified", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("runner", sa.String(36), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_stylize_jobs_status", "stylize_jobs", ["status", "created_at"])
    op.create_index("ix_stylize_jobs_owner", "stylize_jobs", ["owner", "status"])


def downgrade() -> None:
    op.drop_index("ix_stylize_jobs_owner", table_name="stylize_jobs")
    op.drop_index("ix_stylize_jobs_status", table_name="stylize_jobs")
    op.drop_table("stylize_jobs")
