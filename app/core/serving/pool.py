"""The pools behind `FaceInference`, and what they share.

- `ThreadPool` (backend "thread"): worker threads in this process on already loaded
  pipelines; the test suite's backend (one model shared by many apps).
- `app.core.serving.process.ProcessPool` (backend "process"): worker processes, one
  pipeline each, fed by proxy threads here.
- `app.core.serving.client.RemotePool`: the jobs go to a pool server (`facesvc serve`).

The first two run the same `Scheduler` and the same batch code (`tasks.run_batch`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from app.core.errors import Overloaded
from app.core.serving.jobs import Job, Kind
from app.core.serving.scheduler import Scheduler
from app.core.serving.worker import Worker, count

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.core.model.stages import Pipeline
    from app.core.telemetry import Metrics

log = logging.getLogger(__name__)


class Pool(Protocol):
    @property
    def ready(self) -> bool: ...

    def submit(self, kind: Kind, job: Job) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def batch_limits(settings: Settings, device: torch.device) -> tuple[int, int]:
    """(max_batch, max_detect_batch): the settings, or where 0 the device's defaults. A GPU
    needs far larger batches than a CPU before a forward pass stops getting cheaper per
    face."""
    gpu = device.type == "cuda"
    max_batch = settings.inference_max_batch or (256 if gpu else 32)
    max_detect_batch = settings.inference_max_detect_batch or (32 if gpu else 8)
    return max_batch, max_detect_batch


def batch_capacity(settings: Settings) -> int:
    """Images the pool works on at once when every worker runs a full detection batch
    (worker processes by default: one per core on the CPU, one per GPU)."""
    from app.core.model.device import resolve_devices

    total = 0
    for device in resolve_devices(settings.device):
        workers = workers_per_device(
            device, settings.inference_workers_per_device, settings.torch_threads or 1
        )
        total += workers * batch_limits(settings, device)[1]
    return total


def make_scheduler(settings: Settings, device: torch.device, metrics: Metrics) -> Scheduler:
    max_batch, max_detect_batch = batch_limits(settings, device)

    def dropped(kind: Kind, jobs: list[Job]) -> None:
        count(metrics, kind, "expired", len(jobs))  # dropped, never run

    def depth(kind: Kind, n: int) -> None:
        metrics.queue_depth.labels(kind).set(n)

    return Scheduler(
        settings.inference_queue_size,
        max_batch,
        settings.inference_max_wait_ms / 1000,
        max_detect_batch=max_detect_batch,
        on_drop=dropped,
        on_depth=depth,
    )


def workers_per_device(device: torch.device, configured: int, torch_threads: int) -> int:
    """`configured` when set; else one per GPU (its own batching keeps it busy), and on
    the CPU as many as there are cores for `torch_threads` threads each."""
    if configured > 0:
        return configured
    if device.type != "cpu" or torch_threads <= 0:
        return 1
    return max(1, len(os.sched_getaffinity(0)) // torch_threads)


def warm_up(pipeline: Pipeline) -> None:
    """First calls allocate buffers and pick kernels; pay for that before serving."""
    pipeline.detect(np.full((160, 160, 3), 128, np.uint8))
    size = pipeline.backbone.input_size
    pipeline.embed_chips(np.zeros((1, size, size, 3), np.uint8))


class ThreadPool:
    """Worker threads on already loaded pipelines; a crashed worker is replaced."""

    def __init__(self, pipelines: Sequence[Pipeline], settings: Settings, metrics: Metrics) -> None:
        self.pipelines = list(pipelines)
        self.scheduler = make_scheduler(settings, self.pipelines[0].backbone.device, metrics)
        self.metrics = metrics
        self.configured_workers = settings.inference_workers_per_device
        self.torch_threads = settings.torch_threads
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

    def submit(self, kind: Kind, job: Job) -> None:
        self.scheduler.submit(kind, job)

    def start(self) -> None:
        """Warm every pipeline up, then start its workers (blocking: call off the loop)."""
        for pipeline in self.pipelines:
            warm_up(pipeline)
        with self._lock:
            for pipeline in self.pipelines:
                device = pipeline.backbone.device
                n = workers_per_device(device, self.configured_workers, self.torch_threads)
                for _ in range(n):
                    self._spawn(pipeline)
            self.scheduler.workers = len(self.workers)
            self._started = True
        log.info(
            "inference pool: %d worker threads on %s",
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
