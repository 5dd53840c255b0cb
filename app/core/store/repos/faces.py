"""Database access for the stored faces as the search index and the model tools see
them: the gallery of one model (to build an index), the vectors and collections of some
faces (to follow changes), and faces of other models (to re-embed them). Identities, and
adding and deleting faces, are `app.core.store.repos.identities`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Row, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.core.store.codec import embedding_from_bytes, embedding_to_bytes
from app.core.store.rows.identities import Face, Identity
from app.core.store.vector_index import Vectors


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
