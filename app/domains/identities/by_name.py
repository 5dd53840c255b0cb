"""The gallery addressed by identity *name*, for the CompreFace-compatible API, where a
"subject" is a name. Names are not unique in our own API; here a name stands for every
identity that bears it: reads and additions use the oldest of them, deletes and renames
act on all of them (so that after a delete the name is gone from every answer).

Each call is one unit of work within one collection (a name means nothing across
collections); removed faces leave the index only after the commit
(`app.core.store.index_sync`), and changes are audited, as in `IdentityService`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.access import Principal
from app.core.store.index_sync import stage_remove
from app.core.store.repos import audit
from app.core.store.repos import collections as collections_repo
from app.core.store.repos import identities as repo
from app.core.store.unit_of_work import unit_of_work
from app.domains.identities.service import IdentityService
from app.domains.shared import IdentityOut


@dataclass(frozen=True)
class FaceOwner:
    face_id: int
    identity_id: uuid.UUID
    name: str


@dataclass(frozen=True)
class FaceOwnerPage:
    items: list[FaceOwner]
    total: int


class GalleryByName:
    """Built in the lifespan on the app's `IdentityService` (same sessions and index).
    Every call is within one collection (by name; a missing one is a 404), and every
    change is audited as `actor`'s in its own transaction, as `IdentityService` does."""

    def __init__(self, identities: IdentityService) -> None:
        self._sessions = identities.sessions
        self._gallery = identities.gallery

    async def create(self, name: str, *, collection: str, actor: Principal) -> IdentityOut | None:
        """A new identity called `name`; None when the collection has one already."""
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            if await repo.identities_named(session, name, where.id):
                return None
            identity = await repo.add_identity(session, name, None, {}, where.id)
            await audit.record(session, actor, "identity.create", {"identity_id": identity.id})
            return IdentityOut.of(identity)

    async def named(self, name: str, *, collection: str) -> list[IdentityOut]:
        """Every identity called `name`, oldest first."""
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            return [IdentityOut.of(i) for i in await repo.identities_named(session, name, where.id)]

    async def names(self, *, collection: str) -> list[str]:
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            return await repo.distinct_names(session, where.id)

    async def faces(
        self, *, name: str | None, offset: int, limit: int, collection: str
    ) -> FaceOwnerPage:
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            rows, total = await repo.face_owners_page(
                session, name=name, offset=offset, limit=limit, collection_id=where.id
            )
            return FaceOwnerPage([FaceOwner(*row) for row in rows], total)

    async def delete_faces(
        self, face_ids: list[int], *, collection: str, actor: Principal
    ) -> list[FaceOwner]:
        """Delete these faces; the ones that existed in the collection and are now gone
        (a face of another collection is left alone, as one that does not exist)."""
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            rows = await repo.face_owners(session, face_ids, where.id)
            owners = {row[0]: FaceOwner(*row) for row in rows}
            return await self._delete_faces(session, owners, actor)

    async def delete_faces_named(
        self, name: str | None, *, collection: str, actor: Principal
    ) -> int:
        """Every face of the identities called `name` (None: of everyone); the identities
        stay. The number of faces deleted."""
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            rows, _ = await repo.face_owners_page(
                session, name=name, offset=0, limit=None, collection_id=where.id
            )
            owners = {row[0]: FaceOwner(*row) for row in rows}
            return len(await self._delete_faces(session, owners, actor))

    async def delete_named(self, name: str, *, collection: str, actor: Principal) -> int:
        """Every identity called `name`, with its faces; how many identities."""
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            identities = await repo.identities_named(session, name, where.id)
            return await self._delete(session, [i.id for i in identities], actor)

    async def delete_all(self, *, collection: str, actor: Principal) -> int:
        """Every identity of the collection, with its faces; how many identities."""
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            return await self._delete(session, await repo.identity_ids(session, where.id), actor)

    async def rename(self, name: str, new_name: str, *, collection: str, actor: Principal) -> bool:
        """Every identity called `name` takes `new_name`; where `new_name` is already
        taken, their faces move to its oldest identity and they are deleted (a merge).
        False when nobody is called `name`."""
        async with unit_of_work(self._sessions) as session:
            where = await collections_repo.require(session, collection)
            sources = await repo.identities_named(session, name, where.id)
            if not sources or name == new_name:
                return bool(sources)
            targets = await repo.identities_named(session, new_name, where.id)
            if not targets:
                for identity in sources:
                    identity.name = new_name
                await session.flush()
                for identity in sources:
                    target = {"identity_id": identity.id}
                    await audit.record(session, actor, "identity.update", target)
                return True
            into = targets[0].id
            for identity in sources:
                await repo.move_faces(session, identity.id, into)
                await repo.delete_identity(session, identity.id)  # no faces left to unindex
                target = {"identity_id": identity.id, "merged_into": into}
                await audit.record(session, actor, "identity.delete", target)
            return True

    async def _delete_faces(
        self, session: AsyncSession, owners: dict[int, FaceOwner], actor: Principal
    ) -> list[FaceOwner]:
        deleted = await repo.delete_faces(session, list(owners))
        stage_remove(session, self._gallery, deleted)
        for face_id in deleted:
            target = {"identity_id": owners[face_id].identity_id, "face_id": face_id}
            await audit.record(session, actor, "face.delete", target)
        return [owners[face_id] for face_id in deleted]

    async def _delete(
        self, session: AsyncSession, identity_ids: list[uuid.UUID], actor: Principal
    ) -> int:
        count = 0
        for identity_id in identity_ids:
            face_ids = await repo.delete_identity(session, identity_id)
            if face_ids is not None:
                count += 1
                stage_remove(session, self._gallery, face_ids)
                await audit.record(session, actor, "identity.delete", {"identity_id": identity_id})
        return count
