"""The `delete` scope (issue 17): deleting identities and faces is no longer part of
`enroll`. Every key that has `enroll` gets `delete` too, so that a deployment's keys keep
the power they had; a key created from now on deletes only when given `delete`.

The downgrade takes `delete` from every key (revision 0007 does not know the scope): a
key that had only `delete` is left with no scope and can do nothing until changed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The table as this revision knows it (the models may change later; this never does).
api_keys = sa.table("api_keys", sa.column("id", sa.Integer()), sa.column("scopes", sa.JSON()))


def _rewrite(change: Callable[[list[str]], list[str]]) -> None:
    """Apply `change` to every key's scopes, in Python: the JSON functions of SQLite and
    PostgreSQL differ, and a deployment has a handful of keys, not millions."""
    connection = op.get_bind()
    for key_id, scopes in connection.execute(sa.select(api_keys.c.id, api_keys.c.scopes)).all():
        changed = change(list(scopes))
        if changed != scopes:
            connection.execute(
                api_keys.update().where(api_keys.c.id == key_id).values(scopes=changed)
            )


def upgrade() -> None:
    # sorted, as app/core/store/repos/keys.py stores them
    _rewrite(lambda scopes: sorted({*scopes, "delete"}) if "enroll" in scopes else scopes)


def downgrade() -> None:
    _rewrite(lambda scopes: [s for s in scopes if s != "delete"])
