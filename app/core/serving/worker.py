"""Running batches: the bookkeeping every worker shares, and the worker thread of the
thread backend (torch releases the GIL inside its kernels, so threads overlap)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from app.core.errors import InferenceFailed
from app.core.serving.jobs import Job, Kind
from app.core.serving.scheduler import Scheduler
from app.core.serving.tasks import Outcome, run_batch

if TYPE_CHECKING:
    from app.core.model.stages import Pipeline
    from app.core.telemetry import Metrics

log = logging.getLogger(__name__)


def begin(metrics: Metrics, kind: Kind, jobs: list[Job]) -> None:
    """A worker took `jobs`: record how long they waited and how many share the batch."""
    now = time.monotonic()
    for job in jobs:
        waited = now - job.enqueued
        job.timings["queue"] = waited
        metrics.queue_time.labels(kind).observe(waited)
    metrics.batch_size.labels(kind).observe(len(jobs))


def finish(metrics: Metrics, kind: Kind, jobs: Sequence[Job], outcomes: Sequence[Outcome]) -> None:
    done = errors = 0
    for job, (value, error, timings) in zip(jobs, outcomes, strict=True):
        job.timings.update(timings)
        if error is not None:
            job.fail(error)
            errors += 1
        else:
            job.resolve(value)
            done += 1
    count(metrics, kind, "done", done)
    count(metrics, kind, "error", errors)


def crashed(metrics: Metrics, kind: Kind, jobs: Sequence[Job], why: str) -> None:
    failure = InferenceFailed(f"the inference worker {why}; retry the request")
    for job in jobs:
        job.fail(failure)
    count(metrics, kind, "crashed", len(jobs))


def count(metrics: Metrics, kind: Kind, outcome: str, n: int = 1) -> None:
    if n:
        metrics.jobs.labels(kind, outcome).inc(n)


class Worker(threading.Thread):
    """A worker thread on `pipeline`. An exception other than a domain error ends it
    (its jobs get 503 inference_failed); `on_exit` replaces it."""

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

    def run(self) -> None:
        crash: BaseException | None = None
        kind: Kind = "detect"
        jobs: list[Job] = []
        try:
            if self.torch_threads > 0:
                torch.set_num_threads(self.torch_threads)
            while (batch := self.scheduler.next_batch()) is not None:
                kind, jobs = batch
                begin(self.metrics, kind, jobs)
                with self.metrics.model_time.labels(kind).time():
                    outcomes = run_batch(self.pipeline, kind, [job.payload for job in jobs])
                finish(self.metrics, kind, jobs, outcomes)
                jobs = []
        except BaseException as exc:  # anything but a domain error: this worker is done
            crash = exc
            log.exception("inference worker %s crashed; replacing it", self.name)
            crashed(self.metrics, kind, jobs, "crashed")
        finally:
            self.on_exit(self, crash)
