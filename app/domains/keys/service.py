"""Creating, listing and revoking API keys (the store's key repository, audited)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.access import Principal
from app.core.store.repos import keys as repo
from app.core.store.unit_of_work import unit_of_work
from app.domains.keys.schemas import KeyCreate, KeyCreated, KeyList, KeyOut


class KeyService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(self, form: KeyCreate, *, actor: Principal) -> KeyCreated:
        async with unit_of_work(self.sessions) as session:
            row, secret = await repo.create_key(
                session,
                form.name,
                list(form.scopes),
                form.collections,
                expires_at=form.expires_at,
                actor=actor,
            )
            bound = await repo.collection_names(session, row)
            return KeyCreated(key=KeyOut.of(row, bound), secret=secret)

    async def list(self) -> KeyList:
        async with self.sessions() as session:
            rows = await repo.list_keys(session)
            items = [KeyOut.of(row, await repo.collection_names(session, row)) for row in rows]
        return KeyList(items=items)

    async def revoke(self, prefix: str, *, actor: Principal) -> None:
        async with unit_of_work(self.sessions) as session:
            await repo.revoke_key(session, prefix, actor=actor)
