"""Prometheus metrics, one registry per app (no import-time globals)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "facesvc_index_size", "Faces in the search index.", registry=self.registry
        )

        # The inference pool (app/inference); `kind` is "detect" or "embed".
        self.queue_depth = Gauge(
            "facesvc_inference_queue_depth",
            "Jobs waiting for a worker.",
            ["kind"],
            registry=self.registry,
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
        self.index_size.set_function(lambda: float(size()))


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # The server's own time, so a load test can tell it from client queueing.
                took = (time.perf_counter() - start) * 1000
                MutableHeaders(scope=message).append("server-timing", f"app;dur={took:.1f}")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
