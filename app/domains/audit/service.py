"""Reading the audit trail and the recorded decisions (the writes are the changes' own,
`app.core.store.repos.audit.record`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.store.repos import audit as repo
from app.core.store.unit_of_work import unit_of_work
from app.domains.audit.schemas import AuditEventOut, AuditPage, DecisionOut, DecisionPage


class AuditService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def events(self, filters: repo.Filters, limit: int) -> AuditPage:
        async with unit_of_work(self.sessions) as session:
            rows = await repo.list_events(session, filters, limit + 1)
        page = rows[:limit]
        more = len(rows) > limit
        return AuditPage(
            items=[AuditEventOut.model_validate(r) for r in page],
            next_before=page[-1].id if more and page else None,
        )

    async def decisions(self, filters: repo.Filters, limit: int) -> DecisionPage:
        async with unit_of_work(self.sessions) as session:
            rows = await repo.list_decisions(session, filters, limit + 1)
        page = rows[:limit]
        more = len(rows) > limit
        return DecisionPage(
            items=[DecisionOut.model_validate(r) for r in page],
            next_before=page[-1].id if more and page else None,
        )
