"""`InferenceEngine`: the one place the service calls the face pipeline.

Pipeline calls are synchronous and CPU-heavy, so they run in worker threads, at most
`inference_concurrency` at a time; the event loop never blocks on them. A worker pool
with dynamic batching can replace this class without touching the routes.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import anyio.to_thread

from app.face.types import Detection, RGBImage

if TYPE_CHECKING:
    from app.face.backbones.base import Backbone
    from app.face.pipeline import FaceResult

FaceMode = Literal["single", "largest", "all"]


class Pipeline(Protocol):
    """What the service needs from `app.face.pipeline.FacePipeline`."""

    @property
    def backbone(self) -> Backbone: ...

    def decode(self, data: bytes) -> RGBImage: ...

    def detect(self, image: RGBImage) -> list[Detection]: ...

    def analyze(self, data: bytes, *, faces: FaceMode = "single") -> list[FaceResult]: ...


class InferenceEngine:
    def __init__(self, pipeline: Pipeline, concurrency: int = 2) -> None:
        self.pipeline = pipeline
        self._limiter = anyio.CapacityLimiter(concurrency)

    @property
    def backbone(self) -> Backbone:
        return self.pipeline.backbone

    @property
    def model(self) -> tuple[str, str]:
        return self.backbone.name, self.backbone.version

    async def analyze(self, data: bytes, *, faces: FaceMode = "single") -> list[FaceResult]:
        call = partial(self.pipeline.analyze, data, faces=faces)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def detect(self, data: bytes) -> list[Detection]:
        def run() -> list[Detection]:
            return self.pipeline.detect(self.pipeline.decode(data))

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)
