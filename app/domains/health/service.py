"""Readiness (model, database, index) and the Prometheus exposition."""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.serving.inference import FaceInference
from app.core.store.index_feed import IndexFeed
from app.core.store.repos.health import database_answers
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics
from app.domains.health.schemas import Readiness


class HealthService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        inference: FaceInference,
        gallery: GalleryIndex,
        metrics: Metrics,
        index_feed: IndexFeed | None = None,
        index_ready_lag_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.inference = inference
        self.gallery = gallery
        self.metrics = metrics
        self.index_feed = index_feed
        self.index_ready_lag_s = index_ready_lag_s

    async def readiness(self) -> Readiness:
        database = await database_answers(self.engine)
        index = self.gallery.ready
        if index and self.index_feed is not None:
            # Postgres: the feed listens and its oldest unapplied change is recent
            lag = await self._lag()
            index = self.index_feed.live and lag is not None and lag <= self.index_ready_lag_s
        ready = Readiness(status="ok", model=self.inference.ready, database=database, index=index)
        if not (ready.model and ready.database and ready.index):
            ready.status = "unavailable"
        return ready

    async def _lag(self) -> float | None:
        """The index's lag in seconds, also set as the lag gauges; None: no answer."""
        if self.index_feed is None:
            return 0.0
        try:
            lag = await self.index_feed.lag()
        except Exception:  # the database is away: the probe says so, never fails
            return None
        self.metrics.index_lag_seconds.set(lag.seconds)
        self.metrics.index_lag_changes.set(lag.changes)
        self.metrics.index_lag_rows.set(lag.rows)
        return lag.seconds

    async def exposition(self) -> bytes:
        await self._lag()
        # Rendering in multiprocess mode reads every process's files: off the event loop.
        return await anyio.to_thread.run_sync(self.metrics.render)
