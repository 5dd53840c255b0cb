"""Stored threshold calibrations (issue 7): one row per `facesvc calibrate` run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(100), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("tau_verify", sa.Float(), nullable=False),
        sa.Column("far_target", sa.Float(), nullable=False),
        sa.Column("tau_identify", sa.Float(), nullable=False),
        sa.Column("fpir_target", sa.Float(), nullable=False),
        sa.Column("gallery_size", sa.Integer(), nullable=False),
        sa.Column("follow_gallery", sa.Boolean(), nullable=False),
        sa.Column("report", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_calibrations_model", "calibrations", ["model_name", "model_version", "id"])


def downgrade() -> None:
    op.drop_index("ix_calibrations_model", table_name="calibrations")
    op.drop_table("calibrations")
