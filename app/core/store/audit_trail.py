"""What the service records around its work, in sessions of their own: refused changes
(a change that failed leaves nothing in its own rolled-back transaction, so the attempt
is written apart) and, when switched on, verify/recognize decisions.

Both run after the work, in one short transaction each: no pooled connection is held
while a request waits for inference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.access import Principal
from app.core.errors import FacesvcError
from app.core.store.repos import audit

log = logging.getLogger("facesvc.audit")

PRUNE_EVERY_S = 600.0  # decisions past retention are deleted at most this often


@asynccontextmanager
async def failures_audited(
    sessions: async_sessionmaker[AsyncSession],
    actor: Principal,
    action: str,
    target: dict[str, Any],
) -> AsyncIterator[None]:
    """A change refused with a client error (404, 409, 422: its outcome is the error's
    code) is recorded in a transaction of its own. Server-side failures (503 under
    load) are not: they say nothing about the caller, and would add writes to an
    overloaded service."""
    try:
        yield
    except FacesvcError as exc:
        if exc.status_code < 500:
            async with sessions() as session, session.begin():
                await audit.record(session, actor, action, target, outcome=exc.code)
        raise


class DecisionLog:
    """Records verify/recognize answers when FACESVC_RECORD_DECISIONS is on, and deletes
    those older than the retention (on a write, at most every `prune_every_s`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        enabled: bool,
        retention_days: float,
        prune_every_s: float = PRUNE_EVERY_S,
    ) -> None:
        self.sessions = sessions
        self.enabled = enabled
        self.retention = timedelta(days=retention_days)
        self.prune_every_s = prune_every_s
        self._next_prune = 0.0  # monotonic seconds: the first write prunes

    async def record(self, actor: Principal, decisions: Sequence[audit.Decision]) -> None:
        """Never fails the answer it records: a failed write is logged as an error."""
        if not self.enabled or not decisions:
            return
        try:
            async with self.sessions() as session, session.begin():
                await audit.add_decisions(session, actor, decisions)
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + self.prune_every_s
                    await self._prune(session)
        except Exception:
            log.exception("could not record %d decision(s)", len(decisions))

    async def prune(self) -> int:
        async with self.sessions() as session, session.begin():
            return await self._prune(session)

    async def _prune(self, session: AsyncSession) -> int:
        gone = await audit.prune_decisions(session, datetime.now(UTC) - self.retention)
        if gone:
            log.info("deleted %d decision(s) older than %s", gone, self.retention)
        return gone
