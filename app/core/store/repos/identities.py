"""Database access for identities and faces. Functions flush; the request commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.core.store.rows.identities import Face, Identity


async def add_identity(
    session: AsyncSession, name: str, external_id: str | None, meta: dict[str, Any]
) -> Identity:
    identity = Identity(name=name, external_id=external_id, meta=meta, faces=[])
    session.add(identity)
    await session.flush()
    return identity


async def get_identity(session: AsyncSession, identity_id: uuid.UUID) -> Identity | None:
    query = select(Identity).where(Identity.id == identity_id).options(selectinload(Identity.faces))
    return await session.scalar(query)


async def get_by_external_id(session: AsyncSession, external_id: str) -> Identity | None:
    query = (
        select(Identity)
        .where(Identity.external_id == external_id)
        .options(selectinload(Identity.faces))
    )
    return await session.scalar(query)


async def list_identities(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, external_id: str | None
) -> list[Identity]:
    query = select(Identity).order_by(Identity.id).limit(limit)
    if after is not None:
        query = query.where(Identity.id > after)
    if external_id is not None:
        query = query.where(Identity.external_id == external_id)
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
    vector = np.ascontiguousarray(embedding, dtype="<f4").reshape(-1)
    face = Face(
        identity_id=identity.id,
        model_name=model[0],
        model_version=model[1],
        dim=int(vector.size),
        embedding=vector.tobytes(),
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


async def other_model_faces_exist(session: AsyncSession, model: tuple[str, str]) -> bool:
    other = or_(Face.model_name != model[0], Face.model_version != model[1])
    return bool(await session.scalar(select(exists().where(other))))
