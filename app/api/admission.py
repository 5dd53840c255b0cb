"""Admission at the door: a request that runs inference is let in only while the pool can
finish it within its deadline; the rest get 503 + Retry-After at once.

Every POST under /v1/ runs the face pipeline. Counting them here, before the body is read
or a database connection is taken, keeps memory bounded and answers an overloaded client
in milliseconds instead of letting it wait out the deadline. The request's deadline also
starts here (`app.core.serving.deadline`): reading the body and auth count against it.

How many may be in at once follows the measured service rate: with `rate` requests
finished per busy second, `rate * window` admitted requests drain within `window`
(`FACESVC_ADMISSION_WINDOW_MS`, at most half the deadline): that bounds the latency of
what is let in, and how long the service needs to be back to normal once a flood stops.
The configured `inference_queue_size` is the ceiling.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.serving.deadline import request_deadline
from app.core.telemetry import Metrics

MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 30


class ServiceRate:
    """Requests finished per second *while the service was busy*: idle time between
    bursts says nothing about capacity, so it is left out. Over the last `window`
    completions."""

    def __init__(self, window: int = 128) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=window)  # (busy_total, t)
        self.busy_total = 0.0
        self.busy_since: float | None = None

    def started(self, now: float, in_flight_before: int) -> None:
        if in_flight_before == 0:
            self.busy_since = now

    def finished(self, now: float, in_flight_after: int) -> None:
        busy = self.busy_total + (now - self.busy_since if self.busy_since is not None else 0.0)
        self.samples.append((busy, now))
        if in_flight_after == 0 and self.busy_since is not None:
            self.busy_total = busy
            self.busy_since = None

    def per_second(self) -> float | None:
        if len(self.samples) < 8:
            return None  # too little to go on
        busy = self.samples[-1][0] - self.samples[0][0]
        return (len(self.samples) - 1) / busy if busy > 0 else None


class AdmissionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        deadline_s: float,
        window_s: float,
        floor: int,
        metrics: Metrics,
    ) -> None:
        """`floor`: never fewer admitted than this, measured rate or not: the pool's own
        batch capacity twice over (one batch running, the next one filling). Below it
        the workers would run half-empty batches, finish fewer requests, and so admit
        fewer still: clients retrying at once on the same machine drove that spiral."""
        self.app = app
        self.floor = min(floor, limit)
        self.ceiling = limit
        self.deadline_s = deadline_s
        self.window_s = min(window_s, deadline_s / 2)
        self.metrics = metrics
        self.in_flight = 0  # only touched on the event loop
        self.rate = ServiceRate()

    @property
    def limit(self) -> int:
        rate = self.rate.per_second()
        if rate is None:
            return self.floor
        fits = math.floor(rate * self.window_s)
        return max(self.floor, min(self.ceiling, fits))

    def retry_after(self) -> int:
        """When the requests in progress will have drained: a client told "1 s" by a
        server draining 5 requests a second through 60 admitted ones would only retry
        into the next 503."""
        rate = self.rate.per_second()
        if rate is None:
            return MIN_RETRY_AFTER_S
        seconds = math.ceil(self.in_flight / rate)
        return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, seconds))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not runs_inference(scope):
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        if self.in_flight >= self.limit:
            self.metrics.rejected.inc()
            await self._reject(send)
            return
        token = request_deadline.set(now + self.deadline_s)
        self.rate.started(now, self.in_flight)
        self.in_flight += 1
        try:
            await self.app(scope, receive, self._honest_retry_after(send))
        finally:
            self.in_flight -= 1
            self.rate.finished(time.monotonic(), self.in_flight)
            request_deadline.reset(token)

    def _honest_retry_after(self, send: Send) -> Send:
        """A 503 from further in (queue full, deadline passed, worker lost) carries the
        same drain estimate as one from here."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = MutableHeaders(scope=message)
                headers["retry-after"] = str(self.retry_after())
            await send(message)

        return wrapped

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "overloaded",
                "detail": "the service is at capacity; retry after the given seconds",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after()).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def runs_inference(scope: Scope) -> bool:
    return scope.get("method") == "POST" and str(scope.get("path", "")).startswith("/v1/")
