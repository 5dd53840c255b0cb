"""Reading the index change log (`app.core.store.rows.index_changes`); the triggers write it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.store.rows.index_changes import IndexChange


async def latest_seq(session: AsyncSession) -> int:
    """The number of the last committed change (0: none yet)."""
    return int(await session.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))) or 0)


async def changes_between(session: AsyncSession, after: int, upto: int) -> Sequence[IndexChange]:
    """The changes numbered after `after` up to `upto`, in order (fewer when the log has
    already dropped some: the caller then rebuilds)."""
    query = (
        select(IndexChange)
        .where(IndexChange.seq > after, IndexChange.seq <= upto)
        .order_by(IndexChange.seq)
    )
    return (await session.scalars(query)).all()


async def behind(session: AsyncSession, applied: int) -> tuple[int, int, datetime | None]:
    """How far a replica that applied changes up to `applied` is behind: changes, face
    rows in them, and when the oldest of them was made (None when not behind)."""
    query = select(IndexChange).where(IndexChange.seq > applied).order_by(IndexChange.seq)
    pending = (await session.scalars(query.limit(1000))).all()  # rows: of the first 1000
    rows = sum(len(change.added) + len(change.removed) for change in pending)
    count = await session.scalar(select(func.count()).where(IndexChange.seq > applied))
    return int(count or 0), rows, pending[0].at if pending else None
