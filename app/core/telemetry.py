"""Prometheus metrics, one registry per app (no import-time globals).

Under `facesvc serve` every process (API processes, the pool server) writes its samples
to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, chosen by
that variable being set when prometheus_client is first imported); /metrics then adds
up the files of all processes (`render`). Gauges computed from live state are set at
scrape time (`on_scrape`) or on every change, never with `set_function`, which that
mode cannot see.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Where a request's time goes: queue wait, decode, detect, align, embed (measured where
# they ran, in the worker), database (observed by the services via `Metrics.stage`).
STAGES = ("queue", "decode", "detect", "align", "embed", "database")
STAGE_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._scrape_hooks: list[Callable[[], None]] = []
        self.requests = Counter(
            "facesvc_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facesvc_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.faces_embedded = Counter(
            "facesvc_faces_embedded",
            "Faces embedded, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.index_size = Gauge(
            "facesvc_index_size",
            "Faces in the search index.",
            registry=self.registry,
            multiprocess_mode="max",  # every API process holds the same gallery
        )
        # Replicas on one Postgres (app.core.store.index_feed); 0 on SQLite.
        self.index_lag_seconds = Gauge(
            "facesvc_index_lag_seconds",
            "Age of the oldest database change the index has not applied yet (0: current).",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.index_lag_changes = Gauge(
            "facesvc_index_lag_changes",
            "Database changes (statements on faces) the index has not applied yet.",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.index_lag_rows = Gauge(
            "facesvc_index_lag_rows",
            "Face rows in the changes the index has not applied yet.",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.index_apply_delay = Histogram(
            "facesvc_index_apply_delay_seconds",
            "From a change's commit in the database to its application to this index.",
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.index_rebuilds = Counter(
            "facesvc_index_rebuilds",
            "Full catch-ups of the index from the faces table, by reason: start, "
            "reconnect, gap (changes no longer in the log), reset (faces truncated).",
            ["reason"],
            registry=self.registry,
        )
        self.stage_time = Histogram(
            "facesvc_stage_seconds",
            "Time a request spent in each stage: queue (waiting for a worker), decode, "
            "detect, align, embed (per batch the request was in), database.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )

        # The inference pool (app/core/serving); `kind` is "detect" or "embed".
        self.queue_depth = Gauge(
            "facesvc_inference_queue_depth",
            "Jobs waiting for a worker.",
            ["kind"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set by the one process holding the queues
        )
        self.batch_size = Histogram(
            "facesvc_inference_batch_size",
            "Jobs per batch run by a worker.",
            ["kind"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "facesvc_inference_queue_seconds",
            "Time a job waited in the queue.",
            ["kind"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.model_time = Histogram(
            "facesvc_inference_model_seconds",
            "Time a worker spent on one batch.",
            ["kind"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.jobs = Counter(
            "facesvc_inference_jobs",
            "Jobs by outcome: done, error (a domain error such as no_face), expired "
            "(deadline passed in the queue, not run), crashed (its worker died).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "facesvc_inference_rejected",
            "Requests turned away with 503 because the pool was full.",
            registry=self.registry,
        )
        self.worker_restarts = Counter(
            "facesvc_inference_worker_restarts",
            "Workers replaced after a crash.",
            registry=self.registry,
        )

    def track_index(self, size: Callable[[], int]) -> None:
        self.on_scrape(lambda: self.index_size.set(size()))

    def on_scrape(self, hook: Callable[[], None]) -> None:
        """Run `hook` before every scrape (to set gauges from live state)."""
        self._scrape_hooks.append(hook)

    def observe_stages(self, timings: Mapping[str, float]) -> None:
        for stage, seconds in timings.items():
            self.stage_time.labels(stage).observe(seconds)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block as stage `name`: `with metrics.stage("database"): ...`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_time.labels(name).observe(time.perf_counter() - start)

    def render(self) -> bytes:
        """The exposition text: this process's registry, or in multiprocess mode every
        process's samples added up."""
        for hook in self._scrape_hooks:
            hook()
        if not os.environ.get(MULTIPROC_ENV):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
