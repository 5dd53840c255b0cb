"""The index change log and its NOTIFY trigger (issue 16: replicas kept current).

On Postgres every statement that inserts, deletes or re-embeds faces (the API, the CLI,
a restore, a cascade from a deleted identity or collection, hand-written SQL) appends
one row to `index_changes` and sends NOTIFY facesvc_index with its sequence number and
face ids, in the same transaction. SQLite gets the (unused) table only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# Names and numbers shared with app/core/store/rows/index_changes.py (CHANNEL,
# KEPT_CHANGES); a migration keeps its own copy so that it never changes afterwards.
FUNCTION = r"""
CREATE FUNCTION facesvc_index_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    added bigint[] := '{}';
    removed bigint[] := '{}';
    next_seq bigint;
    payload text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO added FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO removed FROM old_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        -- only a new model or vector matters to an index (not a moved identity_id)
        SELECT coalesce(array_agg(n.id ORDER BY n.id), '{}') INTO added
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.model_name, n.model_version, n.embedding)
              IS DISTINCT FROM (o.model_name, o.model_version, o.embedding);
    END IF;
    IF TG_OP <> 'TRUNCATE' AND cardinality(added) = 0 AND cardinality(removed) = 0 THEN
        RETURN NULL;
    END IF;
    -- Numbers in commit order without gaps: the lock is held to the commit, so the next
    -- writer reads this row's number only once it committed (or rolled back with it).
    PERFORM pg_advisory_xact_lock(1717658469);
    SELECT coalesce(max(seq), 0) + 1 INTO next_seq FROM index_changes;
    INSERT INTO index_changes (seq, at, added, removed, reset)
    VALUES (next_seq, clock_timestamp(), to_jsonb(added), to_jsonb(removed),
            TG_OP = 'TRUNCATE');
    DELETE FROM index_changes WHERE seq <= next_seq - 10000;
    payload := json_build_object(
        'seq', next_seq, 'at', extract(epoch FROM clock_timestamp()),
        'add', added, 'del', removed, 'reset', TG_OP = 'TRUNCATE'
    )::text;
    IF octet_length(payload) > 7000 THEN  -- NOTIFY's limit is 8000 bytes: read the log
        payload := json_build_object('seq', next_seq, 'more', true)::text;
    END IF;
    PERFORM pg_notify('facesvc_index', payload);
    RETURN NULL;
END
$$
"""

TRIGGERS = [
    "CREATE TRIGGER faces_index_insert AFTER INSERT ON faces "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION facesvc_index_change()",
    "CREATE TRIGGER faces_index_delete AFTER DELETE ON faces "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION facesvc_index_change()",
    "CREATE TRIGGER faces_index_update AFTER UPDATE ON faces "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION facesvc_index_change()",
    "CREATE TRIGGER faces_index_truncate AFTER TRUNCATE ON faces "
    "FOR EACH STATEMENT EXECUTE FUNCTION facesvc_index_change()",
]


def upgrade() -> None:
    op.create_table(
        "index_changes",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added", JSONType, nullable=False),
        sa.Column("removed", JSONType, nullable=False),
        sa.Column("reset", sa.Boolean(), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("insert", "delete", "update", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS faces_index_{name} ON faces")
        op.execute("DROP FUNCTION IF EXISTS facesvc_index_change()")
    op.drop_table("index_changes")
