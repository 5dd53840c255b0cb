"""Database access for collections. Functions flush; the caller commits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.store.rows.collections import Collection
from app.core.store.rows.identities import Face, Identity


async def create(
    session: AsyncSession, name: str, description: str | None, meta: dict[str, Any]
) -> Collection:
    """A duplicate name fails at the flush (IntegrityError: a 409 in the unit of work)."""
    row = Collection(name=name, description=description, meta=meta)
    session.add(row)
    await session.flush()
    return row


async def by_name(session: AsyncSession, name: str) -> Collection | None:
    return await session.scalar(select(Collection).where(Collection.name == name))


async def require(session: AsyncSession, name: str) -> Collection:
    """The collection called `name`, or a 404."""
    row = await by_name(session, name)
    if row is None:
        raise NotFound(f"no collection named {name!r}")
    return row


async def names_of(session: AsyncSession, ids: Iterable[int]) -> set[str]:
    wanted = list(ids)
    if not wanted:
        return set()
    return set(await session.scalars(select(Collection.name).where(Collection.id.in_(wanted))))


async def ids_of(session: AsyncSession, names: Iterable[str]) -> dict[str, int]:
    wanted = list(names)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Collection.name, Collection.id).where(Collection.name.in_(wanted))
    )
    return {row.name: row.id for row in rows}


async def list_with_counts(
    session: AsyncSession, names: frozenset[str] | None
) -> list[tuple[Collection, int, int]]:
    """Every collection (only `names` when given) with its identity and face counts."""
    identities = (
        select(Identity.collection_id, func.count().label("n"))
        .group_by(Identity.collection_id)
        .subquery()
    )
    faces = (
        select(Identity.collection_id, func.count(Face.id).label("n"))
        .join(Face, Face.identity_id == Identity.id)
        .group_by(Identity.collection_id)
        .subquery()
    )
    query = (
        select(
            Collection,
            func.coalesce(identities.c.n, 0),
            func.coalesce(faces.c.n, 0),
        )
        .outerjoin(identities, identities.c.collection_id == Collection.id)
        .outerjoin(faces, faces.c.collection_id == Collection.id)
        .order_by(Collection.name)
    )
    if names is not None:
        query = query.where(Collection.name.in_(list(names)))
    return [(row[0], int(row[1]), int(row[2])) for row in (await session.execute(query)).all()]


async def delete_with_contents(session: AsyncSession, collection_id: int) -> list[int] | None:
    """Delete a collection, its identities and their faces; the ids of the faces deleted
    (for the index), or None when a concurrent request deleted it first. Statements
    with RETURNING, so that a face enrolled meanwhile is named too."""
    members = select(Identity.id).where(Identity.collection_id == collection_id)
    faces = await session.execute(
        delete(Face).where(Face.identity_id.in_(members)).returning(Face.id)
    )
    face_ids = list(faces.scalars())
    await session.execute(delete(Identity).where(Identity.collection_id == collection_id))
    deleted = await session.execute(delete(Collection).where(Collection.id == collection_id))
    return face_ids if int(deleted.rowcount) == 1 else None  # type: ignore[attr-defined]
