"""The queries of `facesvc export` / `facesvc import` (app/core/store/backup.py has the
format): every row of the chosen collections in id order, streamed; rows inserted with
their own ids, and PostgreSQL's sequences moved past them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.core.store.rows.collections import Collection
from app.core.store.rows.identities import Face, Identity

CHUNK = 1000


async def collections(session: AsyncSession, names: Sequence[str] | None) -> list[Collection]:
    query = select(Collection).order_by(Collection.id)
    if names is not None:
        query = query.where(Collection.name.in_(list(names)))
    return list((await session.scalars(query)).all())


async def identities(session: AsyncSession, collection_id: int) -> AsyncIterator[Identity]:
    query = (
        select(Identity)
        .where(Identity.collection_id == collection_id)
        .order_by(Identity.id)
        .execution_options(yield_per=CHUNK)
    )
    async for row in await session.stream_scalars(query):
        yield row


async def faces(session: AsyncSession, collection_id: int) -> AsyncIterator[Face]:
    """The collection's faces, crops included, in id order."""
    query = (
        select(Face)
        .join(Identity, Identity.id == Face.identity_id)
        .where(Identity.collection_id == collection_id)
        .options(undefer(Face.thumbnail))
        .order_by(Face.id)
        .execution_options(yield_per=CHUNK)
    )
    async for row in await session.stream_scalars(query):
        yield row


async def collection_ids(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Collection.name, Collection.id))
    return {row.name: row.id for row in rows}


async def insert(session: AsyncSession, rows: Sequence[Collection | Identity | Face]) -> None:
    session.add_all(rows)
    await session.flush()
    session.expunge_all()  # a large import keeps no row in memory


async def move_sequences(session: AsyncSession) -> None:
    """Rows inserted with their own ids leave PostgreSQL's sequences behind; the next
    face or collection would collide. (SQLite's AUTOINCREMENT follows by itself.)"""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in ("faces", "collections"):
        await session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST((SELECT max(id) FROM {table}), 1))"
            )
        )
