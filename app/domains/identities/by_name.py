"""The gallery addressed by identity *name*, for the CompreFace-compatible API, where a
"subject" is a name. Names are not unique in our own API; here a name stands for every
identity that bears it: reads and additions use the oldest of them, deletes and renames
act on all of them (so that after a delete the name is gone from every answer).

Each call is one unit of work; removed faces leave the index only after the commit
(`app.core.store.index_sync`), as in `IdentityService`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.store.index_sync import stage_remove
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
    """Built in the lifespan on the app's `IdentityService` (same sessions and index)."""

    def __init__(self, identities: IdentityService) -> None:
        self._sessions = identities.sessions
        self._gallery = identities.gallery

    async def create(self, name: str) -> IdentityOut:
        async with unit_of_work(self._sessions) as session:
            return IdentityOut.of(await repo.add_identity(session, name, None, {}))

    async def named(self, name: str) -> list[IdentityOut]:
        """Every identity called `name`, oldest first."""
        async with unit_of_work(self._sessions) as session:
            return [IdentityOut.of(i) for i in await repo.identities_named(session, name)]

    async def names(self) -> list[str]:
        async with unit_of_work(self._sessions) as session:
            return await repo.distinct_names(session)

    async def faces(self, *, name: str | None, offset: int, limit: int) -> FaceOwnerPage:
        async with unit_of_work(self._sessions) as session:
            rows, total = await repo.face_owners_page(
                session, name=name, offset=offset, limit=limit
            )
            return FaceOwnerPage([FaceOwner(*row) for row in rows], total)

    async def owners(self, face_ids: list[int]) -> list[FaceOwner]:
        async with unit_of_work(self._sessions) as session:
            return [FaceOwner(*row) for row in await repo.face_owners(session, face_ids)]

    async def delete_faces(self, face_ids: list[int]) -> list[FaceOwner]:
        """Delete these faces; the ones that existed and are now gone."""
        async with unit_of_work(self._sessions) as session:
            owners = {row[0]: FaceOwner(*row) for row in await repo.face_owners(session, face_ids)}
            deleted = await repo.delete_faces(session, list(owners))
            stage_remove(session, self._gallery, deleted)
            return [owners[face_id] for face_id in deleted]

    async def delete_faces_named(self, name: str | None) -> int:
        """Every face of the identities called `name` (None: of everyone); the identities
        stay. The number of faces deleted."""
        async with unit_of_work(self._sessions) as session:
            rows, _ = await repo.face_owners_page(session, name=name, offset=0, limit=None)
            deleted = await repo.delete_faces(session, [row[0] for row in rows])
            stage_remove(session, self._gallery, deleted)
            return len(deleted)

    async def delete_named(self, name: str) -> int:
        """Every identity called `name`, with its faces; how many identities."""
        async with unit_of_work(self._sessions) as session:
            identities = await repo.identities_named(session, name)
            return await self._delete(session, [i.id for i in identities])

    async def delete_all(self) -> int:
        """Every identity, with its faces; how many identities."""
        async with unit_of_work(self._sessions) as session:
            return await self._delete(session, await repo.identity_ids(session))

    async def rename(self, name: str, new_name: str) -> bool:
        """Every identity called `name` takes `new_name`; where `new_name` is already
        taken, their faces move to its oldest identity and they are deleted (a merge).
        False when nobody is called `name`."""
        async with unit_of_work(self._sessions) as session:
            sources = await repo.identities_named(session, name)
            if not sources or name == new_name:
                return bool(sources)
            targets = await repo.identities_named(session, new_name)
            if not targets:
                for identity in sources:
                    identity.name = new_name
                await session.flush()
                return True
            for identity in sources:
                await repo.move_faces(session, identity.id, targets[0].id)
                await repo.delete_identity(session, identity.id)  # no faces left to unindex
            return True

    async def _delete(self, session: AsyncSession, identity_ids: list[uuid.UUID]) -> int:
        count = 0
        for identity_id in identity_ids:
            face_ids = await repo.delete_identity(session, identity_id)
            if face_ids is not None:
                count += 1
                stage_remove(session, self._gallery, face_ids)
        return count
