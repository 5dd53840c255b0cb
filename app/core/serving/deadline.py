"""The request's deadline, as an absolute `time.monotonic()` value.

The HTTP layer sets `request_deadline` when a request arrives, so the time a request
spends before reaching the pool (parsing, auth, database) counts against it.
CLOCK_MONOTONIC is system-wide on Linux: the same value means the same instant in the
API process, the pool server and the worker processes.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def resolve(deadline: float | None, timeout: float | None, default: float) -> float:
    """The first of: `deadline` (absolute), `timeout` (seconds from now, for older
    callers), the request's deadline, now + `default` seconds."""
    if deadline is not None:
        return deadline
    now = time.monotonic()
    if timeout is not None:
        return now + timeout
    from_request = request_deadline.get()
    return from_request if from_request is not None else now + default
