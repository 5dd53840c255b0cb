"""Database access for identities, and for adding and deleting their faces (also by name,
for the CompreFace-compatible API). Functions flush; the request commits. What the search
index and the model tools read of the faces is `app.core.store.repos.faces`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.core.store.codec import embedding_to_bytes
from app.core.store.rows.collections import DEFAULT_COLLECTION_ID
from app.core.store.rows.identities import Face, Identity


async def add_identity(
    session: AsyncSession,
    name: str,
    external_id: str | None,
    meta: dict[str, Any],
    collection_id: int = DEFAULT_COLLECTION_ID,
) -> Identity:
    identity = Identity(
        name=name, external_id=external_id, meta=meta, faces=[], collection_id=collection_id
    )
    session.add(identity)
    await session.flush()
    return identity


def _in(collection_id: int | None) -> list[ColumnElement[bool]]:
    """The filter to one collection (None: every collection)."""
    return [] if collection_id is None else [Identity.collection_id == collection_id]


async def get_identity(
    session: AsyncSession, identity_id: uuid.UUID, collection_id: int | None = None
) -> Identity | None:
    """The identity with its faces; None also when it is in another collection."""
    query = (
        select(Identity)
        .where(Identity.id == identity_id, *_in(collection_id))
        .options(selectinload(Identity.faces))
    )
    return await session.scalar(query)


async def get_by_external_id(
    session: AsyncSession, external_id: str, collection_id: int = DEFAULT_COLLECTION_ID
) -> Identity | None:
    """external_id is unique within a collection only."""
    query = (
        select(Identity)
        .where(Identity.external_id == external_id, Identity.collection_id == collection_id)
        .options(selectinload(Identity.faces))
    )
    return await session.scalar(query)


async def list_identities(
    session: AsyncSession,
    *,
    after: uuid.UUID | None,
    limit: int,
    external_id: str | None,
    name_contains: str | None = None,
    collection_id: int | None = None,
) -> list[Identity]:
    """A page in id (creation) order. `name_contains`: names holding it in any case, as
    written (`%` and `_` are no wildcards); SQLite's lower() is Python's on our
    connections (`app.core.store.db`), so both databases fold every letter alike."""
    query = select(Identity).where(*_in(collection_id)).order_by(Identity.id).limit(limit)
    if after is not None:
        query = query.where(Identity.id > after)
    if external_id is not None:
        query = query.where(Identity.external_id == external_id)
    if name_contains is not None:
        folded = func.lower(Identity.name)
        query = query.where(folded.contains(name_contains.lower(), autoescape=True))
    return list((await session.scalars(query)).all())


async def add_face(
    session: AsyncSession,
    identity: Identity,
    *,
    model: tuple[str, str],
    embedding: np.ndarray,
    box: Sequence[float] | None,
    detection_score: float | None,
    thumbnail: bytes | None,
) -> Face:
    encoded = embedding_to_bytes(embedding)
    face = Face(
        identity_id=identity.id,
        model_name=model[0],
        model_version=model[1],
        dim=encoded.dim,
        embedding=encoded.data,
        box=[float(v) for v in box] if box is not None else None,
        detection_score=detection_score,
        thumbnail=thumbnail,
    )
    identity.faces.append(face)
    await session.flush()
    return face


async def delete_identity(session: AsyncSession, identity_id: uuid.UUID) -> list[int] | None:
    """Delete a person and their faces; the ids of the faces deleted, or None when a
    concurrent request deleted the person first (statements, not ORM deletes, so the
    row counts say who won the race, and RETURNING names every face, also one added
    since the identity was loaded)."""
    faces = await session.execute(
        delete(Face).where(Face.identity_id == identity_id).returning(Face.id)
    )
    face_ids = list(faces.scalars())
    deleted = await session.execute(delete(Identity).where(Identity.id == identity_id))
    return face_ids if _rowcount(deleted) == 1 else None


async def delete_face(session: AsyncSession, face_id: int) -> bool:
    """False when the face was already gone (a concurrent delete)."""
    deleted = await session.execute(delete(Face).where(Face.id == face_id))
    return _rowcount(deleted) == 1


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


async def faces_with_identities(session: AsyncSession, face_ids: Sequence[int]) -> dict[int, Face]:
    if not face_ids:
        return {}
    # One statement (a join), so a concurrent delete cannot split face from identity.
    query = (
        select(Face)
        .where(Face.id.in_(list(face_ids)))
        .options(joinedload(Face.identity, innerjoin=True))
    )
    return {face.id: face for face in (await session.scalars(query)).all()}


# ------------------------------------------------- by name (the CompreFace-compatible API)
# Each within one collection (`collection_id`): a name means nothing across collections.


async def identities_named(session: AsyncSession, name: str, collection_id: int) -> list[Identity]:
    """Every identity called `name` in the collection, oldest first (ids are
    time-ordered UUIDv7)."""
    query = (
        select(Identity)
        .where(Identity.name == name, Identity.collection_id == collection_id)
        .order_by(Identity.id)
        .options(selectinload(Identity.faces))
    )
    return list((await session.scalars(query)).all())


async def distinct_names(session: AsyncSession, collection_id: int) -> list[str]:
    query = (
        select(Identity.name)
        .where(Identity.collection_id == collection_id)
        .distinct()
        .order_by(Identity.name)
    )
    return list((await session.scalars(query)).all())


async def identity_ids(session: AsyncSession, collection_id: int) -> list[uuid.UUID]:
    query = select(Identity.id).where(Identity.collection_id == collection_id)
    return list((await session.scalars(query.order_by(Identity.id))).all())


def _owned_faces(name: str | None, collection_id: int) -> Any:
    query = (
        select(Face.id, Face.identity_id, Identity.name)
        .join(Identity)
        .where(Identity.collection_id == collection_id)
    )
    return query if name is None else query.where(Identity.name == name)


async def face_owners_page(
    session: AsyncSession,
    *,
    name: str | None,
    offset: int,
    limit: int | None,
    collection_id: int,
) -> tuple[Sequence[Row[int, uuid.UUID, str]], int]:
    """(face id, identity id, identity name) in face-id order, and the total count
    (`limit` None: all of them)."""
    owned = _owned_faces(name, collection_id)
    query = owned.order_by(Face.id).offset(offset)
    rows = (await session.execute(query if limit is None else query.limit(limit))).all()
    total = await session.scalar(select(func.count()).select_from(owned.subquery()))
    return rows, int(total or 0)


async def face_owners(
    session: AsyncSession, face_ids: Sequence[int], collection_id: int
) -> Sequence[Row[int, uuid.UUID, str]]:
    """(face id, identity id, identity name) of those of these faces that exist in the
    collection."""
    if not face_ids:
        return []
    query = _owned_faces(None, collection_id).where(Face.id.in_(list(face_ids)))
    return (await session.execute(query.order_by(Face.id))).all()


async def delete_faces(session: AsyncSession, face_ids: Sequence[int]) -> list[int]:
    """The ids actually deleted (a concurrent delete may have taken some)."""
    if not face_ids:
        return []
    deleted = await session.execute(
        delete(Face).where(Face.id.in_(list(face_ids))).returning(Face.id)
    )
    return list(deleted.scalars())


async def move_faces(session: AsyncSession, source: uuid.UUID, target: uuid.UUID) -> None:
    """Reassign every face of `source` to `target` (face ids, and so the index, unchanged)."""
    await session.execute(update(Face).where(Face.identity_id == source).values(identity_id=target))
