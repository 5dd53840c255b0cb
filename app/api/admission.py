"""Load shedding at the door: at most `limit` image requests in the service at once.

Every POST under /v1/ runs the face pipeline. Counting them here, before the body is read
or a database connection is taken, keeps memory bounded and makes backpressure visible:
without it, requests holding a pooled database connection while they wait for inference
queue up on the connection pool for seconds instead of getting a quick 503.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.metrics import Metrics

MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 30


class DrainRate:
    """When the requests in progress will have drained, from when the last `window`
    image requests finished: a client told to come back then finds room, one told
    "1 s" by a server draining 5 requests a second through a queue of 64 only retries
    into the next 503."""

    def __init__(self, window: int = 64) -> None:
        self.finished: deque[float] = deque(maxlen=window)

    def record(self, now: float) -> None:
        self.finished.append(now)

    def retry_after(self, in_flight: int, now: float) -> int:
        if len(self.finished) < 2:
            return MIN_RETRY_AFTER_S  # nothing measured yet
        span = max(now - self.finished[0], 1e-3)
        per_second = (len(self.finished) - 1) / span
        seconds = math.ceil(in_flight / per_second)
        return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, seconds))


def runs_inference(scope: Scope) -> bool:
    return scope.get("method") == "POST" and str(scope.get("path", "")).startswith("/v1/")


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0  # only touched on the event loop
        self.drain = DrainRate()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not runs_inference(scope):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.metrics.rejected.inc()
            await self._reject(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.drain.record(time.monotonic())

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {"error": "overloaded", "detail": f"{self.limit} image requests are in progress"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (
                b"retry-after",
                str(self.drain.retry_after(self.in_flight, time.monotonic())).encode(),
            ),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
