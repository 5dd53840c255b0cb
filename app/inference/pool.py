"""The worker threads: a few per device, each running its device's pipeline. A worker
that crashes is replaced by a fresh one on the same pipeline."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.errors import Overloaded
from app.inference.scheduler import Scheduler
from app.inference.worker import Worker

if TYPE_CHECKING:
    from app.api.metrics import Metrics
    from app.inference.engine import Pipeline

log = logging.getLogger(__name__)


def workers_per_device(pipeline: Pipeline, configured: int, torch_threads: int) -> int:
    """`configured` when set; else one per GPU (its own batching keeps it busy), and on
    the CPU as many as there are cores for `torch_threads` threads each."""
    if configured > 0:
        return configured
    if pipeline.backbone.device.type != "cpu" or torch_threads <= 0:
        return 1
    return max(1, len(os.sched_getaffinity(0)) // torch_threads)


def warm_up(pipeline: Pipeline) -> None:
    """First calls allocate buffers and pick kernels; pay for that before serving."""
    pipeline.detect(np.full((160, 160, 3), 128, np.uint8))
    size = pipeline.backbone.input_size
    pipeline.embed_chips(np.zeros((1, size, size, 3), np.uint8))


class WorkerPool:
    def __init__(
        self,
        pipelines: Sequence[Pipeline],
        scheduler: Scheduler,
        metrics: Metrics,
        *,
        workers_per_device: int = 0,
        torch_threads: int = 0,
    ) -> None:
        self.pipelines = list(pipelines)
        self.scheduler = scheduler
        self.metrics = metrics
        self.configured_workers = workers_per_device
        self.torch_threads = torch_threads
        self.workers: list[Worker] = []
        self._lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._serial = 0

    @property
    def ready(self) -> bool:
        """Started, not stopping, and every device has a live worker."""
        with self._lock:
            if not self._started or self._stopping:
                return False
            serving = {id(w.pipeline) for w in self.workers if w.is_alive()}
            return all(id(p) in serving for p in self.pipelines)

    def start(self) -> None:
        """Warm every pipeline up, then start its workers (blocking: call off the loop)."""
        for pipeline in self.pipelines:
            warm_up(pipeline)
        with self._lock:
            for pipeline in self.pipelines:
                count = workers_per_device(pipeline, self.configured_workers, self.torch_threads)
                for _ in range(count):
                    self._spawn(pipeline)
            self.scheduler.workers = len(self.workers)
            self._started = True
        log.info(
            "inference pool: %d workers on %s",
            len(self.workers),
            ", ".join(str(p.backbone.device) for p in self.pipelines),
        )

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopping = True
            workers = list(self.workers)
        for job in self.scheduler.close():
            job.fail(Overloaded("the service is shutting down"))
        for worker in workers:
            worker.join(timeout)

    def _spawn(self, pipeline: Pipeline) -> None:
        self._serial += 1
        worker = Worker(
            f"inference-{pipeline.backbone.device}-{self._serial}",
            pipeline,
            self.scheduler,
            self.metrics,
            self.torch_threads,
            self._on_exit,
        )
        self.workers.append(worker)
        worker.start()

    def _on_exit(self, worker: Worker, crash: BaseException | None) -> None:
        """Called by a worker thread as it ends: replace it unless the pool is stopping."""
        with self._lock:
            self.workers.remove(worker)
            if crash is None or self._stopping:
                return
            self.metrics.worker_restarts.inc()
            self._spawn(worker.pipeline)
