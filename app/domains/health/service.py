"""Readiness (model, database, index) and the Prometheus exposition."""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.serving.inference import FaceInference
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
    ) -> None:
        self.engine = engine
        self.inference = inference
        self.gallery = gallery
        self.metrics = metrics

    async def readiness(self) -> Readiness:
        database = await database_answers(self.engine)
        ready = Readiness(
            status="ok", model=self.inference.ready, database=database, index=self.gallery.ready
        )
        if not (ready.model and ready.database and ready.index):
            ready.status = "unavailable"
        return ready

    async def exposition(self) -> bytes:
        # Rendering in multiprocess mode reads every process's files: off the event loop.
        return await anyio.to_thread.run_sync(self.metrics.render)
