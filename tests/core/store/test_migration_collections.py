"""Migration 0004 (collections) on SQLite and PostgreSQL: a gallery enrolled before
collections existed moves, whole, into the `default` collection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import column, func, select, table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.store.rows.collections import DEFAULT_COLLECTION, DEFAULT_COLLECTION_ID, Collection
from app.core.store.rows.identities import Face, Identity
from app.core.store.rows.keys import ApiKey
from tests.core.store.test_migrations import alembic_config, engine_for
from tests.core.store.test_migrations import url as url  # the fixture

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_existing_identities_move_into_the_default_collection(url: str) -> None:
    command.upgrade(alembic_config(url), "0003")
    engine = engine_for(url)
    people = [uuid.uuid4() for _ in range(3)]
    head = Identity.__table__.c  # head's types bind the values
    columns = ("id", "name", "external_id", "metadata", "created_at", "updated_at")
    identities = table("identities", *(column(c, head[c].type) for c in columns))
    keys = ApiKey.__table__.c
    key_columns = ("prefix", "key_hash", "name", "scopes", "created_at")
    api_keys = table("api_keys", *(column(c, keys[c].type) for c in key_columns))
    try:
        with engine.begin() as conn:
            conn.execute(
                identities.insert(),
                [
                    {
                        "id": person,
                        "name": f"p{n}",
                        "external_id": f"emp-{n}",
                        "metadata": {"n": n},
                        "created_at": WHEN,
                        "updated_at": WHEN,
                    }
                    for n, person in enumerate(people)
                ],
            )
            conn.execute(
                api_keys.insert(),
                [{"prefix": "abc", "key_hash": "0" * 64, "name": "old", "scopes": ["verify"],
                  "created_at": WHEN}],
            )  # fmt: skip
        command.upgrade(alembic_config(url), "head")
        with Session(engine) as session:
            (default,) = session.scalars(select(Collection)).all()
            assert (default.id, default.name) == (DEFAULT_COLLECTION_ID, DEFAULT_COLLECTION)
            moved = session.execute(select(Identity.id, Identity.collection_id)).all()
            assert sorted(moved) == sorted((p, DEFAULT_COLLECTION_ID) for p in people)
            # a new collection gets a new id (PostgreSQL's sequence was moved past 1)
            other = Collection(name="other", meta={})
            session.add(other)
            session.flush()
            assert other.id > DEFAULT_COLLECTION_ID
            # external_id is unique per collection now: the same one elsewhere is fine ...
            session.add(Identity(name="x", external_id="emp-0", meta={}, collection_id=other.id))
            session.flush()
            session.commit()
            assert session.scalar(select(func.count()).select_from(Face)) == 0
            # ... and the keys made before are bound to no collection (all of them)
            assert session.scalars(select(ApiKey.collections)).all() == [None]
        with Session(engine) as session, pytest.raises(IntegrityError):  # ... not twice in one
            session.add(Identity(name="y", external_id="emp-0", meta={}))
            session.flush()
    finally:
        engine.dispose()
