"""Keeping the FAISS index in step with the database.

Services *stage* index changes on the session; they are applied only after the commit
succeeded (SQLAlchemy's `after_commit` event) and dropped on rollback, so a failed commit
leaves no vector behind. A face's collection never changes, so the ids alone tell the
index from the database. `catch_up` compares the index with the database (count and sum of
face ids, one aggregate query) and repairs any difference: the index is rebuilt this way
at start, and on SQLite other worker processes pick up each other's enrolls and deletes
by it at each search. On Postgres other processes' changes arrive by NOTIFY instead
(`app.core.store.index_feed`), which uses `rebuild` after a start, reconnect or gap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.store.repos import faces as repo
from app.core.store.rows.collections import DEFAULT_COLLECTION_ID
from app.core.store.vector_index import GalleryIndex, Vectors

_PENDING = "facesvc.index_ops"
# More faces missing than this: read the model's whole gallery in one streamed query
# rather than its ids, then the missing vectors by IN lists (bench/replica_start.py).
BULK_LOAD_MIN = 10_000


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
    session: AsyncSession,
    index: GalleryIndex,
    ids: Sequence[int],
    vectors: Vectors,
    collection: int = DEFAULT_COLLECTION_ID,
) -> None:
    ids = list(ids)
    _pending(session.sync_session).append(lambda: index.add(ids, vectors, collection))


def stage_remove(session: AsyncSession, index: GalleryIndex, ids: Sequence[int]) -> None:
    ids = list(ids)
    _pending(session.sync_session).append(lambda: index.remove(ids))


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
    for _ in range(attempts):
        outcome = await _catch_up_once(session, index, model)
        if outcome != "refused":
            return outcome == "changed"
    return False


async def rebuild(
    session: AsyncSession, index: GalleryIndex, model: tuple[str, str], attempts: int = 50
) -> bool:
    """`catch_up` that insists: True once the index matched a read of the database,
    False only when local commits kept refusing every read (then the caller retries)."""
    for _ in range(attempts):
        if await _catch_up_once(session, index, model) != "refused":
            return True
    return False


async def _catch_up_once(
    session: AsyncSession, index: GalleryIndex, model: tuple[str, str]
) -> Literal["same", "changed", "refused"]:
    seen = index.generation
    count, id_sum = await repo.face_id_fingerprint(session, model)
    if count == len(index) and id_sum == index.id_sum:
        return "same"
    if count - len(index) > BULK_LOAD_MIN:  # at start: the whole gallery, streamed
        ids, rows, collections = await repo.model_gallery(session, model, index.dim)
        return "changed" if index.load(ids, rows, collections, seen) else "refused"
    db_faces = await repo.face_collections_of_model(session, model)
    vectors = await repo.embeddings(session, sorted(db_faces.keys() - index.ids()), index.dim)
    if index.reconcile(db_faces.keys(), vectors, seen, db_faces):
        return "changed"
    return "refused"
