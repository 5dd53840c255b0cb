"""A worker thread: takes batches from the scheduler and runs them on its device's
pipeline. torch releases the GIL inside its kernels, so threads run in parallel."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from app.errors import FacesvcError, InferenceFailed
from app.face.types import RGBImage
from app.inference.jobs import Job, Kind
from app.inference.scheduler import Scheduler

if TYPE_CHECKING:
    from app.api.metrics import Metrics
    from app.inference.engine import Pipeline

log = logging.getLogger(__name__)

FaceMode = Literal["single", "largest", "all"]


@dataclass(frozen=True)
class DetectRequest:
    """Decode and detect; with `faces` set, also choose and align the faces."""

    data: bytes
    faces: FaceMode | None


@dataclass(frozen=True)
class EmbedRequest:
    chips: list[RGBImage]


class Worker(threading.Thread):
    def __init__(
        self,
        name: str,
        pipeline: Pipeline,
        scheduler: Scheduler,
        metrics: Metrics,
        torch_threads: int,
        on_exit: Callable[[Worker, BaseException | None], None],
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.pipeline = pipeline
        self.scheduler = scheduler
        self.metrics = metrics
        self.torch_threads = torch_threads
        self.on_exit = on_exit
        self.in_flight: list[Job] = []
        self.in_flight_kind: Kind = "detect"

    def run(self) -> None:
        crash: BaseException | None = None
        try:
            if self.torch_threads > 0:
                torch.set_num_threads(self.torch_threads)
            while (batch := self.scheduler.next_batch()) is not None:
                self._run_batch(*batch)
        except BaseException as exc:  # anything but a domain error: this worker is done
            crash = exc
            log.exception("inference worker %s crashed; replacing it", self.name)
            failure = InferenceFailed("the inference worker crashed; retry the request")
            for job in self.in_flight:
                job.fail(failure)
            self._count(self.in_flight_kind, "crashed", len(self.in_flight))
        finally:
            self.on_exit(self, crash)

    def _run_batch(self, kind: Kind, jobs: list[Job]) -> None:
        now = time.monotonic()
        live = [job for job in jobs if not job.abandoned]
        self._count(kind, "expired", len(jobs) - len(live))  # dropped, never run
        for job in live:
            self.metrics.queue_time.labels(kind).observe(now - job.enqueued)
        if not live:
            return
        self.in_flight_kind, self.in_flight = kind, live
        self.metrics.batch_size.labels(kind).observe(len(live))
        with self.metrics.model_time.labels(kind).time():
            if kind == "embed":
                self._embed(live)
            else:
                self._detect(live)
        self.in_flight = []

    def _detect(self, jobs: list[Job]) -> None:
        """Decode each job's image, detect in all of them at once (same-size images
        share MTCNN's passes), then choose and align each job's faces."""
        decoded: list[tuple[Job, RGBImage]] = []
        for job in jobs:
            try:
                decoded.append((job, self.pipeline.decode(job.payload.data)))
            except FacesvcError as exc:  # invalid_image, too large, ...: the caller's answer
                self._fail(job, exc)
        found = self.pipeline.detect_many([image for _, image in decoded])
        for (job, image), detections in zip(decoded, found, strict=True):
            request: DetectRequest = job.payload
            if request.faces is None:
                job.resolve(detections)
                self._count("detect", "done")
                continue
            try:
                aligned = self.pipeline.select(image, detections, faces=request.faces)
            except FacesvcError as exc:  # no_face, multiple_faces
                self._fail(job, exc)
                continue
            job.resolve(aligned)
            self._count("detect", "done")

    def _fail(self, job: Job, error: FacesvcError) -> None:
        job.fail(error)
        self._count("detect", "error")

    def _embed(self, jobs: list[Job]) -> None:
        """One forward pass for every chip of every job, split back per job."""
        requests: list[EmbedRequest] = [job.payload for job in jobs]
        chips = [chip for request in requests for chip in request.chips]
        embeddings = self.pipeline.embed_chips(chips)
        bounds = np.cumsum([len(request.chips) for request in requests])[:-1]
        for job, part in zip(jobs, np.split(embeddings, bounds), strict=True):
            job.resolve(part)
        self._count("embed", "done", len(jobs))

    def _count(self, kind: Kind, outcome: str, n: int = 1) -> None:
        if n:
            self.metrics.jobs.labels(kind, outcome).inc(n)
