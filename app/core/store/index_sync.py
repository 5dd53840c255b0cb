"""Keeping the FAISS index in step with the database.

Services *stage* index changes on the session; they are applied only after the commit
succeeded (SQLAlchemy's `after_commit` event) and dropped on rollback, so a failed commit
leaves no vector behind. `catch_up` compares the index with the database (count and sum of
face ids, one aggregate query) and repairs any difference: the index is rebuilt this way
at start, and other worker processes pick up each other's enrolls and deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.store.rows.identities import Face
from app.core.store.vector_index import GalleryIndex, Vectors

_PENDING = "facesvc.index_ops"


class IndexedSession(Session):
    """The ORM session class of the service; applies staged index changes after commit."""


def _pending(session: Session) -> list[Callable[[], None]]:
    ops: list[Callable[[], None]] = session.info.setdefault(_PENDING, [])
    return ops


@event.listens_for(IndexedSession, "after_commit")
def _apply(session: Session) -> None:
    for op in session.info.pop(_PENDING, []):
        op()


@event.listens_for(IndexedSession, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(_PENDING, None)


def stage_add(
    session: AsyncSession, index: GalleryIndex, ids: Sequence[int], vectors: Vectors
) -> None:
    ids = list(ids)
    _pending(session.sync_session).append(lambda: index.add(ids, vectors))


def stage_remove(session: AsyncSession, index: GalleryIndex, ids: Sequence[int]) -> None:
    ids = list(ids)
    _pending(session.sync_session).append(lambda: index.remove(ids))


def embedding_from_bytes(data: bytes, dim: int) -> Vectors:
    vector = np.frombuffer(data, dtype="<f4")
    if vector.shape != (dim,):
        raise ValueError(f"stored embedding has {vector.size} values, expected {dim}")
    return vector.astype(np.float32)


async def catch_up(
    session: AsyncSession, index: GalleryIndex, model: tuple[str, str], attempts: int = 3
) -> bool:
    """Make the index hold exactly the database's faces of `model`. True if it changed.

    A commit hook of this process may run while the database is read; the read may then
    miss that commit and would undo the hook's change (a face just enrolled vanishing
    from search, or one just deleted coming back). The index's generation, taken before
    the first query, refuses such a stale read; it is retried, and otherwise left to the
    next call. Each query sees every commit before it (READ COMMITTED in Postgres,
    SQLite reads outside a write transaction), so a read that began after the
    generation was taken includes every change the index holds.
    """
    same_model = (Face.model_name == model[0], Face.model_version == model[1])
    for _ in range(attempts):
        seen = index.generation
        count, id_sum = (
            await session.execute(
                select(func.count(Face.id), func.coalesce(func.sum(Face.id), 0)).where(*same_model)
            )
        ).one()
        if int(count) == len(index) and int(id_sum) == index.id_sum:
            return False
        db_ids = set((await session.scalars(select(Face.id).where(*same_model))).all())
        vectors = await _vectors(session, sorted(db_ids - index.ids()), index.dim)
        if index.reconcile(db_ids, vectors, seen):
            return True
    return False


async def _vectors(session: AsyncSession, face_ids: list[int], dim: int) -> dict[int, Vectors]:
    found: dict[int, Vectors] = {}
    for start in range(0, len(face_ids), 5000):
        chunk = face_ids[start : start + 5000]
        rows = await session.execute(
            select(Face.id, Face.embedding, Face.dim).where(Face.id.in_(chunk))
        )
        found.update(
            (row.id, embedding_from_bytes(row.embedding, dim)) for row in rows if row.dim == dim
        )
    return found
