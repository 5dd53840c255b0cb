"""One unit of work: a session committed when the work is done, rolled back on any error.

Repositories only flush; whoever opens the unit commits. The session takes a pooled
connection at its first query only, so a service runs inference before querying (or
`app.core.store.db.release`s a read-only session first) and no connection waits on the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import Conflict

CONFLICT = "the change conflicts with stored data (duplicate external_id?)"


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Committed on a normal exit; a unique-constraint failure becomes a 409 `Conflict`."""
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict(CONFLICT) from exc
        except BaseException:
            await session.rollback()
            raise
