"""`InferenceEngine`: the one place the service calls the face pipeline.

Requests never run the pipeline themselves: they put a detection job, then an embedding
job, on the scheduler's queues and await the result, so the event loop never blocks on
inference. Worker threads (`app.inference.pool`) batch the embedding jobs of concurrent
requests into one forward pass. At most `inference_queue_size` requests are in the pool
at once (more get 503 `overloaded`), and a request whose deadline passes gets 503
`timeout`; its jobs still queued are dropped, not run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread
import numpy as np

from app.errors import DeadlineExceeded, Overloaded
from app.face.types import AlignedFace, Detection, Embedding, RGBImage
from app.inference.deadline import request_deadline
from app.inference.jobs import Job, Kind
from app.inference.pool import WorkerPool
from app.inference.scheduler import Scheduler
from app.inference.worker import DetectRequest, EmbedRequest, FaceMode

if TYPE_CHECKING:
    import torch

    from app.api.metrics import Metrics
    from app.config import Settings
    from app.face.backbones.base import Backbone
    from app.face.pipeline import FaceResult

__all__ = ["FaceMode", "InferenceEngine", "Pipeline"]


class Pipeline(Protocol):
    """What the service needs from `app.face.pipeline.FacePipeline`."""

    @property
    def backbone(self) -> Backbone: ...

    @property
    def model(self) -> tuple[str, str]: ...

    def decode(self, data: bytes) -> RGBImage: ...

    def detect(self, image: RGBImage) -> list[Detection]: ...

    def detect_many(self, images: Sequence[RGBImage]) -> list[list[Detection]]: ...

    def select(
        self, image: RGBImage, detections: list[Detection], *, faces: FaceMode = "single"
    ) -> list[AlignedFace]: ...

    def embed_chips(self, chips: Sequence[RGBImage] | np.ndarray) -> Embedding: ...


def batch_limits(settings: Settings, device: torch.device) -> tuple[int, int]:
    """(max_batch, max_detect_batch): the settings, or where 0 the device's defaults. A GPU
    needs far larger batches than a CPU before a forward pass stops getting cheaper per
    face."""
    gpu = device.type == "cuda"
    max_batch = settings.inference_max_batch or (256 if gpu else 32)
    max_detect_batch = settings.inference_max_detect_batch or (32 if gpu else 8)
    return max_batch, max_detect_batch


class InferenceEngine:
    """`pipelines`: one loaded pipeline per device (`app.main.load_pipelines`)."""

    def __init__(self, pipelines: Sequence[Pipeline], settings: Settings, metrics: Metrics) -> None:
        self.pipelines = list(pipelines)
        self.metrics = metrics
        self.queue_size = settings.inference_queue_size
        self.deadline = settings.inference_deadline_ms / 1000
        max_batch, max_detect_batch = batch_limits(settings, self.backbone.device)
        self.scheduler = Scheduler(
            settings.inference_queue_size,
            max_batch,
            settings.inference_max_wait_ms / 1000,
            max_detect_batch=max_detect_batch,
        )
        self.pool = WorkerPool(
            self.pipelines,
            self.scheduler,
            metrics,
            workers_per_device=settings.inference_workers_per_device,
            torch_threads=settings.torch_threads,
        )
        self.pending = 0  # requests in the pool; only touched on the event loop
        for kind in ("detect", "embed"):
            metrics.queue_depth.labels(kind).set_function(partial(self.scheduler.depth, kind))

    @property
    def backbone(self) -> Backbone:
        return self.pipelines[0].backbone

    @property
    def model(self) -> tuple[str, str]:
        return self.pipelines[0].model

    @property
    def ready(self) -> bool:
        return self.pool.ready

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self.pool.start)

    async def stop(self) -> None:
        await anyio.to_thread.run_sync(self.pool.stop)

    async def analyze(
        self, data: bytes, *, faces: FaceMode = "single", timeout: float | None = None
    ) -> list[FaceResult]:
        from app.face.pipeline import FaceResult

        deadline = self._deadline(timeout)
        with self._admitted():
            aligned: list[AlignedFace] = await self._run(
                "detect", DetectRequest(data, faces), deadline
            )
            chips = [face.chip for face in aligned]
            embeddings = await self._run("embed", EmbedRequest(chips), deadline)
        return [
            FaceResult(detection=face.detection, embedding=embedding, aligned=face)
            for face, embedding in zip(aligned, embeddings, strict=True)
        ]

    async def detect(self, data: bytes, *, timeout: float | None = None) -> list[Detection]:
        with self._admitted():
            detections: list[Detection] = await self._run(
                "detect", DetectRequest(data, None), self._deadline(timeout)
            )
        return detections

    async def embed(self, chips: list[RGBImage], *, timeout: float | None = None) -> Embedding:
        """Aligned crops -> embeddings, batched with other requests' faces."""
        with self._admitted():
            embeddings: Embedding = await self._run(
                "embed", EmbedRequest(chips), self._deadline(timeout)
            )
        return embeddings

    def _deadline(self, timeout: float | None) -> float:
        if timeout is not None:
            return time.monotonic() + timeout
        arrived = request_deadline.get()  # set by the HTTP layer when the request arrived
        return arrived if arrived is not None else time.monotonic() + self.deadline

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        if self.pending >= self.queue_size:
            self.metrics.rejected.inc()
            raise Overloaded(f"{self.pending} requests are already waiting for inference")
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    async def _run(self, kind: Kind, payload: object, deadline: float) -> Any:
        loop = asyncio.get_running_loop()
        job = Job(payload, deadline, loop, loop.create_future())
        self.scheduler.submit(kind, job)
        try:
            # On timeout wait_for cancels the future: a worker then skips the job.
            return await asyncio.wait_for(job.future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise DeadlineExceeded(
                "the request's inference deadline passed; try again later"
            ) from None
