"""Database engine, sessions and migrations (SQLAlchemy 2, async; Alembic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"  # app/core/store/db.py


_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _with_driver(url: str, drivers: dict[str, str]) -> str:
    parsed = make_url(url)
    driver = drivers.get(parsed.get_backend_name())
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The async driver for a configured URL: aiosqlite for SQLite, psycopg 3 for Postgres."""
    return _with_driver(url, _ASYNC_DRIVERS)


def sync_url(url: str) -> str:
    """The blocking driver for a configured URL (Alembic)."""
    return _with_driver(url, _SYNC_DRIVERS)


def libpq_url(url: str) -> str:
    """A Postgres URL as libpq (plain psycopg) reads it: without SQLAlchemy's driver name."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted rows (a person's name, embedding) are overwritten with zeros, not left in
    # free pages; `checkpoint` then clears them from the WAL.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
    # SQLite's own lower() folds ASCII letters only; Python's folds every letter, as
    # PostgreSQL's does, so a search by name ("zoë" finds "ZOË") answers alike on both.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(text: str | None) -> str | None:
    return None if text is None else str(text).lower()


def create_engine(url: str, pool_size: int = 10, pool_timeout: float = 5.0) -> AsyncEngine:
    """`pool_size` connections at most (no overflow); a request that waits `pool_timeout`
    seconds for one gets 503 + Retry-After (`app.api.errors`), never a 500."""
    _ensure_sqlite_dir(url)
    pool: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": pool_timeout,
    }
    if make_url(url).get_backend_name() == "sqlite":
        if make_url(url).database in (None, "", ":memory:"):
            pool = {}  # one shared in-memory connection (StaticPool): no pool to size
        engine = create_async_engine(async_url(url), connect_args={"timeout": 30}, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(async_url(url), pool_pre_ping=True, **pool)


async def checkpoint(engine: AsyncEngine) -> None:
    """After a delete on SQLite: copy the WAL into the database and truncate it, so the
    deleted rows' old page images do not stay in the -wal file until shutdown. Best
    effort: a reader still in the WAL makes it partial (the next one finishes it)."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def release(session: AsyncSession) -> None:
    """End a read-only transaction so that its pooled connection goes back to the pool
    before the request waits for inference; the session starts a new one when next used."""
    await session.commit()


def upgrade(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations (blocking; call from a thread inside an event loop)."""
    from alembic import command
    from alembic.config import Config

    _ensure_sqlite_dir(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = sync_url(url)
    command.upgrade(config, revision)


async def check_migrated(engine: AsyncEngine) -> None:
    """Raise `DatabaseNotReady`, saying what to run, unless the database is at this
    version's migration head: on a fresh database a query would otherwise die with a
    driver error about a missing table."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app.core.errors import DatabaseNotReady

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    heads = set(script.get_heads())
    async with engine.connect() as connection:
        current = set(
            await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_heads()
            )
        )
    if current == heads:
        return
    at = ", ".join(sorted(current))
    if not current:
        raise DatabaseNotReady("the database has no tables; run `facesvc db upgrade`")
    if current - {r.revision for r in script.walk_revisions()}:
        raise DatabaseNotReady(
            f"the database is at revision {at}, which this version of facesvc does not "
            "know (a newer version migrated it)"
        )
    raise DatabaseNotReady(
        f"the database is at revision {at} and this version needs "
        f"{', '.join(sorted(heads))}; run `facesvc db upgrade`"
    )
