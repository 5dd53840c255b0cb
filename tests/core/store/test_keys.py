"""API keys in the store, on SQLite and PostgreSQL: expiry and the throttled record of
last use (app/core/store/repos/keys.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import Unauthorized, ValidationFailed
from app.core.store import db
from app.core.store.repos import keys
from app.core.store.rows.keys import ApiKey

T = TypeVar("T")


@asynccontextmanager
async def _store(url: str) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], list[str]]]:
    """Sessions on a migrated database, and every UPDATE of api_keys they send."""
    await asyncio.to_thread(db.upgrade, url)
    engine = db.create_engine(url)
    updates: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            updates.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield db.create_sessionmaker(engine), updates
    finally:
        await engine.dispose()


Sessions = async_sessionmaker[AsyncSession]


def _run(url: str, test: Callable[[Sessions, list[str]], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _store(url) as (sessions, updates):
            return await test(sessions, updates)

    return asyncio.run(main())


async def _new_key(sessions: async_sessionmaker[AsyncSession], **options: Any) -> str:
    async with sessions() as session, session.begin():
        _, key = await keys.create_key(session, "door", ["verify"], **options)
    return key


async def _row(sessions: async_sessionmaker[AsyncSession], key: str) -> ApiKey:
    async with sessions() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
    assert row is not None
    return row


async def _use(sessions: async_sessionmaker[AsyncSession], key: str) -> Any:
    async with sessions() as session:
        return await keys.authenticate(session, key)


def test_last_use_is_written_once_a_minute_not_per_request(database_url: str) -> None:
    async def test(sessions: async_sessionmaker[AsyncSession], updates: list[str]) -> None:
        key = await _new_key(sessions)
        assert (await _row(sessions, key)).last_used_at is None
        before = datetime.now(UTC)
        for _ in range(5):
            assert (await _use(sessions, key)).name == "door"
        assert len(updates) == 1  # the first use only
        first = keys.as_utc((await _row(sessions, key)).last_used_at or before)
        assert before - timedelta(seconds=1) <= first <= datetime.now(UTC)

        # a minute later, the next use is recorded again
        earlier = first - keys.LAST_USED_EVERY - timedelta(seconds=1)
        async with sessions() as session, session.begin():
            await session.execute(update(ApiKey).values(last_used_at=earlier))
        updates.clear()
        await asyncio.gather(*(_use(sessions, key) for _ in range(4)))
        assert 1 <= len(updates) <= 4  # raced: each may try; the WHERE lets one write
        assert keys.as_utc((await _row(sessions, key)).last_used_at or earlier) >= first

    _run(database_url, test)


def test_an_expired_key_is_refused_saying_so(database_url: str) -> None:
    async def test(sessions: async_sessionmaker[AsyncSession], updates: list[str]) -> None:
        soon = datetime.now(UTC) + timedelta(hours=1)
        key = await _new_key(sessions, expires_at=soon)
        assert keys.as_utc((await _row(sessions, key)).expires_at or soon) == soon
        assert (await _use(sessions, key)) is not None

        async with sessions() as session, session.begin():
            past = datetime.now(UTC) - timedelta(seconds=1)
            await session.execute(update(ApiKey).values(expires_at=past))
        with pytest.raises(Unauthorized, match="expired at"):
            await _use(sessions, key)
        # a wrong secret learns nothing about the key, expired or not
        prefix = key.split("_")[1]
        assert await _use(sessions, f"fsk_{prefix}_wrong") is None

    _run(database_url, test)


def test_an_expiry_in_the_past_is_refused(database_url: str) -> None:
    async def test(sessions: async_sessionmaker[AsyncSession], updates: list[str]) -> None:
        with pytest.raises(ValidationFailed, match="in the past"):
            await _new_key(sessions, expires_at=datetime.now(UTC) - timedelta(minutes=1))
        naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)  # read as UTC
        key = await _new_key(sessions, expires_at=naive)
        stored = (await _row(sessions, key)).expires_at
        assert stored is not None and keys.as_utc(stored) == naive.replace(tzinfo=UTC)

    _run(database_url, test)
