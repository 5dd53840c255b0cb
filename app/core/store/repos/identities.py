"""Database access for identities and faces. Functions flush; the request commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Row, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload, undefer

from app.core.store.codec import embedding_from_bytes, embedding_to_bytes
from app.core.store.rows.collections import DEFAULT_COLLECTION_ID
from app.core.store.rows.identities import Face, Identity
from app.core.store.vector_index import Vectors


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
    collection_id: int | None = None,
) -> list[Identity]:
    query = select(Identity).where(*_in(collection_id)).order_by(Identity.id).limit(limit)
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


def _same_model(model: tuple[str, str]) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return Face.model_name == model[0], Face.model_version == model[1]


def _other_model(model: tuple[str, str]) -> ColumnElement[bool]:
    return or_(Face.model_name != model[0], Face.model_version != model[1])


async def other_model_faces_exist(session: AsyncSession, model: tuple[str, str]) -> bool:
    return bool(await session.scalar(select(exists().where(_other_model(model)))))


async def other_model_face_counts(
    session: AsyncSession, model: tuple[str, str]
) -> Sequence[Row[str, str, int]]:
    """(model name, model version, faces) of every other model with stored faces."""
    query = (
        select(Face.model_name, Face.model_version, func.count())
        .where(_other_model(model))
        .group_by(Face.model_name, Face.model_version)
        .order_by(Face.model_name, Face.model_version)
    )
    return (await session.execute(query)).all()


async def face_id_fingerprint(session: AsyncSession, model: tuple[str, str]) -> tuple[int, int]:
    """Count and sum of the ids of `model`'s faces, in one aggregate query (what the
    index compares itself with)."""
    count, id_sum = (
        await session.execute(
            select(func.count(Face.id), func.coalesce(func.sum(Face.id), 0)).where(
                *_same_model(model)
            )
        )
    ).one()
    return int(count), int(id_sum)


async def face_collections_of_model(
    session: AsyncSession, model: tuple[str, str]
) -> dict[int, int]:
    """Face id -> collection id of every face of `model` (what the index holds)."""
    query = (
        select(Face.id, Identity.collection_id)
        .join(Identity, Identity.id == Face.identity_id)
        .where(*_same_model(model))
    )
    return {row.id: row.collection_id for row in await session.execute(query)}


async def embeddings(session: AsyncSession, face_ids: list[int], dim: int) -> dict[int, Vectors]:
    """The stored vectors of these faces, leaving out any of another dimension."""
    found: dict[int, Vectors] = {}
    for start in range(0, len(face_ids), 5000):  # bounded IN lists
        chunk = face_ids[start : start + 5000]
        rows = await session.execute(
            select(Face.id, Face.embedding, Face.dim).where(Face.id.in_(chunk))
        )
        found.update(
            (row.id, embedding_from_bytes(row.embedding, dim)) for row in rows if row.dim == dim
        )
    return found


async def model_gallery(
    session: AsyncSession, model: tuple[str, str], dim: int
) -> tuple[npt.NDArray[np.int64], Vectors, npt.NDArray[np.int64]]:
    """Every face of `model` (of `dim` values) at once: ids, vectors (one row each) and
    collection ids, as arrays, to build a large index (a million faces: no IN lists, no
    array per face). Postgres sends them by a binary COPY: its text results spell each
    embedding in hex, which made a start on 200,000 faces take 9 s instead of 2."""
    query = (
        select(Face.id, Identity.collection_id, Face.embedding)
        .join(Identity, Identity.id == Face.identity_id)
        .where(*_same_model(model), Face.dim == dim)
    )
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        sql = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        raw: Any = (await connection.get_raw_connection()).driver_connection  # psycopg's
        stream = bytearray()
        async with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as copy,
        ):
            async for block in copy:
                stream += block
        return _binary_copy_rows(stream, dim)
    ids: list[int] = []
    collections: list[int] = []
    data = bytearray()
    result = await session.stream(query.execution_options(yield_per=20_000))
    async for rows in result.partitions():
        for face_id, collection_id, embedding in rows:
            ids.append(face_id)
            collections.append(collection_id)
            data += embedding
    vectors = np.frombuffer(bytes(data), dtype="<f4").astype(np.float32).reshape(-1, dim)
    return np.asarray(ids, dtype=np.int64), vectors, np.asarray(collections, dtype=np.int64)


def _binary_copy_rows(
    stream: bytearray, dim: int
) -> tuple[npt.NDArray[np.int64], Vectors, npt.NDArray[np.int64]]:
    """Rows of (int8 id, int4 collection, bytea of `dim` floats) from Postgres's binary
    COPY format: a 19-byte header (and its extension), rows of one fixed size here (each
    field's length before it, big-endian), and a 2-byte trailer."""
    extension = int.from_bytes(stream[15:19], "big")
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("collection_len", ">i4"),
            ("collection", ">i4"),
            ("embedding_len", ">i4"),
            ("embedding", "<f4", (dim,)),  # the stored bytes: little-endian float32
        ]
    )
    rows = np.frombuffer(
        stream,
        dtype=row,
        offset=19 + extension,
        count=(len(stream) - 21 - extension) // row.itemsize,
    )
    if (
        (len(stream) - 21 - extension) % row.itemsize
        or not (rows["fields"] == 3).all()
        or not (rows["embedding_len"] == 4 * dim).all()
    ):
        raise ValueError("unexpected rows in the binary COPY of the gallery")
    return (
        rows["id"].astype(np.int64),
        np.ascontiguousarray(rows["embedding"], dtype=np.float32),
        rows["collection"].astype(np.int64),
    )


async def index_entries(
    session: AsyncSession, face_ids: Sequence[int], model: tuple[str, str], dim: int
) -> tuple[dict[int, Vectors], dict[int, int]]:
    """Of these faces, those `model` embedded: their vectors and their collections (face
    id -> collection id). A face missing from both is deleted or of another model."""
    vectors: dict[int, Vectors] = {}
    collections: dict[int, int] = {}
    ids = sorted(set(face_ids))
    for start in range(0, len(ids), 5000):  # bounded IN lists
        rows = await session.execute(
            select(Face.id, Face.embedding, Face.dim, Identity.collection_id)
            .join(Identity, Identity.id == Face.identity_id)
            .where(Face.id.in_(ids[start : start + 5000]), *_same_model(model))
        )
        for row in rows:
            if row.dim == dim:
                vectors[row.id] = embedding_from_bytes(row.embedding, dim)
                collections[row.id] = row.collection_id
    return vectors, collections


async def faces_of_other_models(
    session: AsyncSession, model: tuple[str, str]
) -> Sequence[Row[int, uuid.UUID, str, str, bool]]:
    """Every face not embedded with `model`, in id order: id, identity id, model name,
    model version and whether its crop (thumbnail) was kept."""
    query = (
        select(
            Face.id,
            Face.identity_id,
            Face.model_name,
            Face.model_version,
            Face.thumbnail.is_not(None),
        )
        .where(_other_model(model))
        .order_by(Face.id)
    )
    return (await session.execute(query)).all()


async def crops_to_reembed(
    session: AsyncSession, face_ids: list[int], model: tuple[str, str]
) -> Sequence[Face]:
    """These faces, their crops loaded, where a crop was kept and `model` did not embed them."""
    query = (
        select(Face)
        .where(Face.id.in_(face_ids), Face.thumbnail.is_not(None), _other_model(model))
        .options(undefer(Face.thumbnail))
        .order_by(Face.id)
    )
    return (await session.scalars(query)).all()


def replace_embedding(face: Face, model: tuple[str, str], embedding: np.ndarray) -> None:
    """Store `model`'s embedding on the face (written at the next flush)."""
    encoded = embedding_to_bytes(embedding)
    face.embedding = encoded.data
    face.dim = encoded.dim
    face.model_name, face.model_version = model


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
