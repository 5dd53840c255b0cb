"""Creating, listing, reading and deleting collections."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.access import Principal
from app.core.errors import Conflict, NotFound
from app.core.store import db
from app.core.store.index_sync import stage_remove
from app.core.store.repos import audit
from app.core.store.repos import collections as repo
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.core.store.unit_of_work import unit_of_work
from app.core.store.vector_index import GalleryIndex
from app.domains.collections.schemas import CollectionCreate, CollectionList, CollectionOut


class CollectionService:
    """Built once in the lifespan. Deleting a collection deletes its identities and
    faces in one unit of work; their vectors leave the index after the commit."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        gallery: GalleryIndex,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.gallery = gallery

    async def create(self, form: CollectionCreate, *, actor: Principal) -> CollectionOut:
        async with unit_of_work(self.sessions) as session:
            if await repo.by_name(session, form.name) is not None:
                raise Conflict(f"a collection named {form.name!r} exists")
            row = await repo.create(session, form.name, form.description, form.metadata or {})
            await audit.record(session, actor, "collection.create", {"collection": form.name})
            return CollectionOut.of(row, identities=0, faces=0)

    async def list(self, names: frozenset[str] | None = None) -> CollectionList:
        """Every collection, or only `names` (a bound key's)."""
        async with self.sessions() as session:
            rows = await repo.list_with_counts(session, names)
        return CollectionList(items=[CollectionOut.of(*row) for row in rows])

    async def get(self, name: str) -> CollectionOut:
        async with self.sessions() as session:
            rows = await repo.list_with_counts(session, frozenset({name}))
        if not rows:
            raise NotFound(f"no collection named {name!r}")
        return CollectionOut.of(*rows[0])

    async def delete(self, name: str, *, actor: Principal) -> None:
        if name == DEFAULT_COLLECTION:
            raise Conflict(
                "the default collection cannot be deleted; delete its identities instead"
            )
        async with unit_of_work(self.sessions) as session:
            row = await repo.require(session, name)
            face_ids = await repo.delete_with_contents(session, row.id)
            if face_ids is None:
                raise NotFound(f"no collection named {name!r}")
            stage_remove(session, self.gallery, face_ids)
            target = {"collection": name, "faces": len(face_ids)}
            await audit.record(session, actor, "collection.delete", target)

    async def checkpoint(self) -> None:
        """After a delete has been committed: the old rows leave SQLite's WAL too."""
        await db.checkpoint(self.engine)
