"""Collections (issue 13): every identity belongs to one; keys may be bound to some.

The `default` collection is made here with id 1 and every existing identity moves into
it; external_id becomes unique per collection instead of globally.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DEFAULT_ID = 1


def upgrade() -> None:
    collections = op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", name="uq_collections_name"),
        sqlite_autoincrement=True,
    )
    op.bulk_insert(
        collections,
        [
            {
                "id": DEFAULT_ID,
                "name": "default",
                "description": "Identities enrolled without a collection",
                "metadata": {},
                "created_at": datetime.now(UTC),
            }
        ],
    )
    if op.get_bind().dialect.name == "postgresql":  # the explicit id left the sequence at 1
        op.execute("SELECT setval('collections_id_seq', (SELECT max(id) FROM collections))")
    # Nullable first, filled, then NOT NULL: existing rows move into the default one.
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("collection_id", sa.Integer(), nullable=True))
    op.execute(f"UPDATE identities SET collection_id = {DEFAULT_ID}")
    with op.batch_alter_table("identities") as batch:
        batch.alter_column("collection_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            "fk_identities_collection_id",
            "collections",
            ["collection_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.drop_constraint("uq_identities_external_id", type_="unique")
        batch.create_unique_constraint(
            "uq_identities_collection_external", ["collection_id", "external_id"]
        )
    op.create_index("ix_identities_collection_id", "identities", ["collection_id"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("collections", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("collections")
    op.drop_index("ix_identities_collection_id", table_name="identities")
    with op.batch_alter_table("identities") as batch:
        batch.drop_constraint("uq_identities_collection_external", type_="unique")
        batch.create_unique_constraint("uq_identities_external_id", ["external_id"])
        batch.drop_constraint("fk_identities_collection_id", type_="foreignkey")
        batch.drop_column("collection_id")
    op.drop_table("collections")
