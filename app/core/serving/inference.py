"""`FaceInference`: the one place the service calls the face pipeline.

Requests never run the pipeline themselves: they put a job on a pool's queues and await
the result, so the event loop never blocks on inference. An image is one job (decode,
detect, align and embed run together where the model lives); aligned chips are an
"embed" job. Which pool (`app.core.serving.pool`): worker threads here, worker processes
fed from here, or a pool server shared by every API process of `facesvc serve`.

At most `inference_queue_size` requests are in the pool at once (more get 503
`overloaded`). Every job carries an absolute deadline (`app.core.serving.deadline`): a job
whose deadline passes leaves the queue without running, and its caller gets
`DeadlineExceeded` (503 `timeout`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
import numpy as np

from app.core.errors import DeadlineExceeded, Overloaded
from app.core.model.stages import Pipeline
from app.core.model.types import Detection, Embedding, FaceResult, FaceSelection, RGBImage
from app.core.serving import deadline as deadlines
from app.core.serving.jobs import Kind, future_job
from app.core.serving.pool import Pool, ThreadPool, batch_limits
from app.core.serving.shm import ShmArray
from app.core.serving.tasks import DetectRequest, EmbedRequest, Faces

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.core.model.backbones.base import Backbone
    from app.core.telemetry import Metrics

__all__ = ["FaceInference", "Pipeline", "backend_for", "batch_limits"]

Backend = Literal["thread", "process"]


def backend_for(settings: Settings, *, injected: bool) -> Backend:
    """FACESVC_INFERENCE_BACKEND, or when "auto": threads on a pipeline handed in (tests
    share one loaded model between apps), worker processes otherwise."""
    if settings.inference_backend != "auto":
        return settings.inference_backend
    return "thread" if injected else "process"


def make_pool(
    pipelines: Sequence[Pipeline], settings: Settings, metrics: Metrics, backend: Backend
) -> Pool:
    if backend == "thread":
        return ThreadPool(pipelines, settings, metrics)
    if settings.inference_pool_socket is not None:
        from app.core.serving.client import RemotePool

        return RemotePool(settings.inference_pool_socket, metrics)
    from app.core.serving.process import ProcessPool

    return ProcessPool(settings, metrics)


class FaceInference:
    """`pipelines`: one loaded pipeline per device (`app.main.load_pipelines`); with the
    process backend only their metadata (backbone, model) is used here."""

    def __init__(
        self,
        pipelines: Sequence[Pipeline],
        settings: Settings,
        metrics: Metrics,
        *,
        backend: Backend = "thread",
    ) -> None:
        self.pipelines = list(pipelines)
        self.metrics = metrics
        self.backend = backend
        self.queue_size = settings.inference_queue_size
        self.default_deadline = settings.inference_deadline_ms / 1000
        self.pool = make_pool(self.pipelines, settings, metrics, backend)
        self.pending = 0  # requests in the pool; only touched on the event loop

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
        self,
        data: bytes,
        *,
        faces: FaceSelection = "single",
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> list[FaceResult]:
        with self._admitted():
            found: Faces = await self._run(
                "detect", DetectRequest(data, faces), self._deadline(deadline, timeout)
            )
        return found.results()  # imported by the pool

    async def detect(
        self, data: bytes, *, timeout: float | None = None, deadline: float | None = None
    ) -> list[Detection]:
        with self._admitted():
            detections: list[Detection] = await self._run(
                "detect", DetectRequest(data, None), self._deadline(deadline, timeout)
            )
        return detections

    async def embed(
        self,
        chips: Sequence[RGBImage] | np.ndarray,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> Embedding:
        """Aligned crops -> embeddings, batched with other requests' faces."""
        array = np.ascontiguousarray(np.stack(list(chips)))
        with self._admitted():
            # Across processes the pixels travel in shared memory, not in a pickle.
            payload = EmbedRequest(array if self.backend == "thread" else ShmArray.put(array))
            embeddings: Embedding = await self._run(
                "embed", payload, self._deadline(deadline, timeout)
            )
        return embeddings

    def _deadline(self, deadline: float | None, timeout: float | None) -> float:
        return deadlines.resolve(deadline, timeout, self.default_deadline)

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

    async def _run(self, kind: Kind, payload: Any, deadline: float) -> Any:
        job, future = future_job(payload, deadline, asyncio.get_running_loop())
        try:
            self.pool.submit(kind, job)
        except BaseException:
            job.release()
            raise
        try:
            # On timeout wait_for cancels the future: the pool then drops the job.
            value, timings = await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise DeadlineExceeded(
                "the request's inference deadline passed; try again later"
            ) from None
        except asyncio.CancelledError:  # the client went away: tell a remote pool
            cancel = getattr(self.pool, "cancel", None)
            if cancel is not None:
                cancel(job)
            raise
        self.metrics.observe_stages(timings)
        return value
