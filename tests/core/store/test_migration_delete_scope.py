"""Migration 0008 (the `delete` scope) on SQLite and PostgreSQL: every key that had
`enroll` keeps its power to delete, no other key gains it, and the downgrade takes the
scope away again."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import column, select, table

from app.core.access import Principal, Scope
from app.core.store.rows.keys import ApiKey
from tests.core.store.test_migrations import alembic_config, engine_for
from tests.core.store.test_migrations import url as url  # the fixture

WHEN = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
BEFORE = {  # key name -> its scopes at 0007
    "door": ["enroll"],
    "kiosk": ["enroll", "verify"],
    "auditor": ["read"],
    "gate": ["verify"],
    "root": ["admin"],
    "scraper": ["metrics"],
}
AFTER = {
    **BEFORE,
    "door": ["delete", "enroll"],
    "kiosk": ["delete", "enroll", "verify"],
}


def _scopes(url: str) -> dict[str, list[str]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ApiKey.name, ApiKey.scopes)).all()
    finally:
        engine.dispose()
    return {name: list(scopes) for name, scopes in rows}


def test_keys_with_enroll_keep_deleting(url: str) -> None:
    command.upgrade(alembic_config(url), "0007")
    keys = ApiKey.__table__.c  # head's types bind the values
    columns = ("prefix", "key_hash", "name", "scopes", "created_at")
    api_keys = table("api_keys", *(column(c, keys[c].type) for c in columns))
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                api_keys.insert(),
                [
                    {"prefix": f"p{n:011d}", "key_hash": "0" * 64, "name": name,
                     "scopes": scopes, "created_at": WHEN}
                    for n, (name, scopes) in enumerate(BEFORE.items())
                ],
            )  # fmt: skip
    finally:
        engine.dispose()

    command.upgrade(alembic_config(url), "0008")
    assert _scopes(url) == AFTER
    for name, scopes in AFTER.items():
        may = Principal(name=name, scopes=frozenset(scopes)).allows(Scope.delete)
        assert may == (name in ("door", "kiosk", "root")), name
    # a key made for deleting alone at 0008: downgrading leaves it with nothing
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                api_keys.insert(),
                [{"prefix": "pcleaner0001", "key_hash": "0" * 64, "name": "cleaner",
                  "scopes": ["delete"], "created_at": WHEN}],
            )  # fmt: skip
    finally:
        engine.dispose()

    command.downgrade(alembic_config(url), "0007")
    assert _scopes(url) == {**BEFORE, "cleaner": []}
    command.upgrade(alembic_config(url), "head")
    assert _scopes(url) == {**AFTER, "cleaner": []}
