"""Replicas on one Postgres: the index kept current by LISTEN/NOTIFY.

Every statement that changes `faces` appends a numbered row to `index_changes` and sends
NOTIFY facesvc_index in its own transaction (the triggers of migration 0007), carrying
the change's number and face ids, never vectors. Each API process listens on one
connection of its own and applies each change by loading those rows: removed ids leave
the index, added ones are read from `faces` and enter it (or leave it when re-embedded
with another model). The numbers run 1, 2, 3, ... in commit order, so a missing number
is a missed change: it is read from the log, and when the log no longer holds it (or
after a reconnect, a start, a TRUNCATE) the index is rebuilt from `faces` by the
fingerprint `catch_up` of `index_sync`. Its generation guard still applies: a local
commit hook that ran while a change was read makes the read be repeated.

While the feed is live a search does not query the database for other processes'
changes; while it reconnects, `live` is false, /readyz says not ready and a search
catches up as on SQLite. SQLite has no feed: one machine, the commit hooks and the
per-search catch-up (`app.core.store.index_sync`) as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.store.db import libpq_url
from app.core.store.index_sync import rebuild
from app.core.store.repos import faces as faces_repo
from app.core.store.repos import index_changes as log_repo
from app.core.store.rows.index_changes import CHANNEL
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics

log = logging.getLogger(__name__)

# A dead peer without a reset (a pulled cable) is noticed by TCP keepalives and by the
# heartbeat query each HEARTBEAT_S without notifications.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
HEARTBEAT_S = 5.0
RETRY_S = 1.0


@dataclass(frozen=True)
class Change:
    seq: int
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    reset: bool = False
    at: float | None = None  # the commit's time, epoch seconds (database clock)


@dataclass(frozen=True)
class Lag:
    changes: int
    rows: int
    seconds: float


class IndexFeed:
    """One per API process, started in the lifespan after the index exists."""

    def __init__(
        self,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        index: GalleryIndex,
        model: tuple[str, str],
        metrics: Metrics,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        retry_s: float = RETRY_S,
    ) -> None:
        self._url = libpq_url(database_url)
        self._sessions = sessions
        self._index = index
        self._model = model
        self._metrics = metrics
        self._heartbeat_s = heartbeat_s
        self._retry_s = retry_s
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.applied = 0  # the last change number the index holds
        self.live = False  # listening, and caught up once since (re)connecting

    async def start(self) -> None:
        """Listen, then build the index; raises when the database cannot be reached."""
        self._connection = await self._listen()
        await self._rebuild("start")
        self.live = True
        self._task = asyncio.create_task(self._run(), name="index-feed")

    async def stop(self) -> None:
        self.live = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def lag(self) -> Lag:
        """How far behind the database the index is (a query; for /readyz, /metrics)."""
        async with self._sessions() as session:
            changes, rows, oldest = await log_repo.behind(session, self.applied)
        seconds = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        return Lag(changes, rows, seconds)

    # ------------------------------------------------------------ the connection

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **KEEPALIVES)
        await connection.execute(f"LISTEN {CHANNEL}")
        return connection

    async def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None

    async def _run(self) -> None:
        while True:
            try:
                assert self._connection is not None
                await self._follow(self._connection)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("index feed lost its connection (%s); reconnecting", exc)
            except Exception:  # a bug must not silently freeze the index: rebuild
                log.exception("index feed failed; reconnecting")
            self.live = False
            await self._close()
            await self._reconnect()

    async def _reconnect(self) -> None:
        while True:
            try:
                self._connection = await self._listen()
                await self._rebuild("reconnect")
                self.live = True
                log.info("index feed reconnected at change %d", self.applied)
                return
            except Exception as exc:
                log.warning("index feed cannot reconnect yet (%s)", exc)
                await self._close()
                await asyncio.sleep(self._retry_s)

    async def _follow(self, connection: psycopg.AsyncConnection[Any]) -> None:
        while True:
            async for notify in connection.notifies(timeout=self._heartbeat_s):
                await self._receive(notify.payload)
            # quiet for a while: the connection still answers, and nothing was missed
            await asyncio.wait_for(connection.execute("SELECT 1"), self._heartbeat_s)
            async with self._sessions() as session:
                latest = await log_repo.latest_seq(session)
            if latest < self.applied:  # the log was emptied: numbers start again
                await self._rebuild("reset")
            elif latest > self.applied:
                await self._from_log(latest)

    # ------------------------------------------------------------ applying changes

    async def _receive(self, payload: str) -> None:
        body = json.loads(payload)
        seq = int(body["seq"])
        if seq <= self.applied:  # already in a rebuild or a read of the log
            return
        if body.get("more") or seq != self.applied + 1:  # ids left out, or a gap
            await self._from_log(seq)
            return
        change = Change(seq, body["add"], body["del"], bool(body["reset"]), body.get("at"))
        await self._apply(change)

    async def _from_log(self, upto: int) -> None:
        async with self._sessions() as session:
            changes = await log_repo.changes_between(session, self.applied, upto)
        if [c.seq for c in changes] != list(range(self.applied + 1, upto + 1)):
            await self._rebuild("gap")  # the log no longer holds them
            return
        for row in changes:
            await self._apply(
                Change(row.seq, row.added, row.removed, row.reset, row.at.timestamp())
            )

    async def _apply(self, change: Change) -> None:
        if change.reset:
            await self._rebuild("reset")
            return
        if change.removed:  # a deleted face id is never used again: safe at any time
            self._index.remove(change.removed)
        added = set(change.added) - set(change.removed)
        while added:
            seen = self._index.generation
            async with self._sessions() as session:
                vectors, collections = await faces_repo.index_entries(
                    session, sorted(added), self._model, self._index.dim
                )
            if self._index.refresh(added, vectors, collections, seen):
                break
        self.applied = change.seq
        if change.at is not None:
            self._metrics.index_apply_delay.observe(max(0.0, time.time() - change.at))

    async def _rebuild(self, reason: str) -> None:
        """The index made equal to `faces`; changes up to the number read first are in it
        (later ones may be too, and applying them again changes nothing)."""
        self._metrics.index_rebuilds.labels(reason).inc()
        async with self._sessions() as session:
            latest = await log_repo.latest_seq(session)
            while not await rebuild(session, self._index, self._model):
                await asyncio.sleep(0)  # local commits kept moving it: read again
        self.applied = latest
