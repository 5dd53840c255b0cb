"""A request's inference deadline, fixed where the request arrives.

The HTTP layer sets `request_deadline` (an absolute `time.monotonic()`; CLOCK_MONOTONIC
is system-wide on Linux, so it means the same in every process) before the body is read;
the inference engine reads it when a caller names no deadline of its own. Time spent
reading the body, on auth or waiting for admission therefore counts against it.
"""

from __future__ import annotations

from contextvars import ContextVar

request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)
