"""Alembic migrations on SQLite and PostgreSQL.

- A database created at each earlier revision and holding data valid there is upgraded
  to head; every row comes back unchanged (but for what a migration changes on purpose,
  `AT_HEAD`), and the service's models read it.
- At head, the models and the migrations agree: autogenerate finds no difference.

PostgreSQL runs on a database of its own, `<FACESVC_TEST_PG_DB>_mig`, created and dropped
here; FACESVC_REQUIRE_POSTGRES turns a missing server into a failure, as elsewhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, select
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.core.store import db
from app.core.store.base import Base
from app.core.store.rows.calibrations import StoredCalibration
from app.core.store.rows.identities import Face, Identity
from app.core.store.rows.jobs import StyleJob
from app.core.store.rows.keys import ApiKey
from tests.support.service import PG_ADMIN_URL, PG_TEST_DB, REQUIRE_POSTGRES, _postgres_available

WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
IDENTITY = uuid.UUID("0190a000-0000-7000-8000-000000000001")
JOB = uuid.UUID("0190a000-0000-7000-8000-000000000002")

# One row per table, valid from the revision that created the table on.
ROWS: dict[str, list[dict[str, Any]]] = {
    "identities": [
        {
            "id": IDENTITY,
            "name": "Ada",
            "external_id": "emp-1",
            "metadata": {"team": "x", "n": [1, 2]},
            "created_at": WHEN,
            "updated_at": WHEN,
            # from 0004 on (left out before it): the default collection, which 0004
            # gives every identity enrolled before it
            "collection_id": 1,
        }
    ],
    "faces": [
        {
            "id": 7,
            "identity_id": IDENTITY,
            "model_name": "dlib-resnet-v1",
            "model_version": "1",
            "dim": 2,
            "embedding": b"\x00\x00\x80?\x00\x00\x00@",
            "box": [1.0, 2.0, 30.0, 40.0],
            "detection_score": 0.99,
            "thumbnail": b"\xff\xd8jpeg",
            "created_at": WHEN,
        }
    ],
    "api_keys": [
        {
            "id": 3,
            "prefix": "fsk_abc",
            "key_hash": "0" * 64,
            "name": "ci",
            "scopes": ["enroll", "verify"],
            "created_at": WHEN,
            "revoked_at": None,
        }
    ],
    "stylize_jobs": [
        {
            "id": JOB,
            "owner": "fsk_abc",
            "status": "running",
            "params": {"steps": 10, "network": "vgg19"},
            "content_image": b"content",
            "style_image": b"style",
            "step": 4,
            "steps": 10,
            "cost": 1.5,
            "cost_content": 0.5,
            "cost_style": 1.0,
            "history": [[1.0, 0.5, 0.5]],
            "attempts": 1,
            "result_png": None,
            "result_path": None,
            "identity_distance": None,
            "identity_verified": None,
            "error": None,
            "runner": "r-1",
            "heartbeat_at": WHEN,
            "created_at": WHEN,
            "started_at": WHEN,
            "finished_at": None,
        }
    ],
    "calibrations": [
        {
            "id": 2,
            "model_name": "dlib-resnet-v1",
            "model_version": "1",
            "source": "lfw_dev",
            "tau_verify": 0.36,
            "far_target": 1e-3,
            "tau_identify": 0.3,
            "fpir_target": 1e-2,
            "gallery_size": 100,
            "follow_gallery": True,
            "report": {"tar": 0.9},
            "created_at": WHEN,
        }
    ],
}
ORM = {Identity: IDENTITY, Face: 7, ApiKey: 3, StyleJob: JOB, StoredCalibration: 2}
# What a migration changes on purpose: (table, column) -> the value at head.
AT_HEAD: dict[tuple[str, str], Any] = {
    # 0008: a key with enroll gets delete, which enroll no longer includes
    ("api_keys", "scopes"): ["delete", "enroll", "verify"],
}


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    config.attributes["database_url"] = db.sync_url(url)
    return config


def revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    reason = _postgres_available()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"FACESVC_REQUIRE_POSTGRES is set but {reason}", pytrace=False)
        pytest.skip(reason)
    import psycopg

    name = f"{PG_TEST_DB}_mig"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        target = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        yield target.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def engine_for(url: str) -> Engine:
    return create_engine(db.sync_url(url))


def comparable(value: Any) -> Any:
    """SQLite hands timestamps back without their zone (they are stored as UTC)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def test_there_are_earlier_revisions() -> None:
    assert revisions()[:3] == ["0001", "0002", "0003"]


@pytest.mark.parametrize("revision", revisions()[:-1])
def test_data_survives_the_upgrade_to_head(url: str, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)
    engine = engine_for(url)
    try:
        present = set(inspect(engine).get_table_names())
        inserted = {name: rows for name, rows in ROWS.items() if name in present}
        assert "identities" in inserted and "faces" in inserted
        with engine.begin() as conn:
            for name, rows in inserted.items():
                columns = {c["name"] for c in inspect(conn).get_columns(name)}
                head = Base.metadata.tables[name]  # head's types bind the values
                # only the revision's columns (head's own defaults, of later columns, left out)
                table = sa_table(name, *(sa_column(c, head.c[c].type) for c in sorted(columns)))
                conn.execute(
                    table.insert(), [{k: v for k, v in r.items() if k in columns} for r in rows]
                )

        command.upgrade(alembic_config(url), "head")

        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == revisions()[-1]
            for name, rows in inserted.items():
                table = Base.metadata.tables[name]
                got = [row._asdict() for row in conn.execute(select(table))]
                assert len(got) == len(rows), name
                for key, value in rows[0].items():
                    want = AT_HEAD.get((name, key), value)
                    assert comparable(got[0][key]) == want, (name, key)
        # and the service's models load every row
        with Session(engine) as session:
            for model, key in ORM.items():
                if model.__tablename__ in inserted:
                    assert session.get(model, key) is not None, model.__tablename__
    finally:
        engine.dispose()


def test_models_and_migrations_agree(url: str) -> None:
    db.upgrade(url)
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()
