"""What bench/http_load.py counts, as plain data: one `Tally` per client process, merged.

Pure functions and dataclasses only (no sockets, no server), so the arithmetic is tested on
its own (tests/benchmarks/test_bench_http_load.py).
"""

from __future__ import annotations

import errno
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

SUCCESS = (200, 201)  # enroll answers 201 Created
_APP_DURATION = re.compile(r"^\s*app\s*(?:;.*?)?;\s*dur=([0-9.]+)", re.IGNORECASE)


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `seconds`, in milliseconds; nan when empty."""
    if not seconds:
        return math.nan
    ordered = sorted(seconds)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1] * 1000


def server_ms(header: str | None) -> float | None:
    """The `app` entry's duration from a Server-Timing header (`app;dur=12.5`), if any."""
    for entry in (header or "").split(","):
        match = _APP_DURATION.match(entry)
        if match:
            try:
                return float(match.group(1))
            except ValueError:
                return None
    return None


def retry_after_ok(header: str | None) -> bool:
    """A 503 must say when to come back: delta-seconds, a non-negative integer."""
    return header is not None and header.strip().isdigit()


def transport_kind(error: BaseException) -> str:
    """A short name for a failed exchange: connect, reset, read, write, timeouts, protocol."""
    if isinstance(error, httpx.TimeoutException):
        return {
            httpx.ConnectTimeout: "connect_timeout",
            httpx.ReadTimeout: "read_timeout",
            httpx.WriteTimeout: "write_timeout",
            httpx.PoolTimeout: "pool_timeout",
        }.get(type(error), "timeout")
    if _caused_by_reset(error):
        return "reset"
    if isinstance(error, httpx.ConnectError):
        return "connect"
    if isinstance(error, httpx.ReadError):
        return "read"
    if isinstance(error, httpx.WriteError):
        return "write"
    if isinstance(error, httpx.RemoteProtocolError):
        return "protocol"  # e.g. the server closed the connection without an answer
    return type(error).__name__


def _caused_by_reset(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionResetError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNRESET
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class Tally:
    """Everything one client process saw in one cell; `merge` adds processes together."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # transport failures by kind
    latency: dict[int, list[float]] = field(default_factory=dict)  # status -> seconds
    server: dict[int, list[float]] = field(default_factory=dict)  # status -> Server-Timing ms
    checked: int = 0  # successful answers whose content was checked
    wrong: int = 0  # ... and were not what the request mix says they must be
    no_retry_after: int = 0  # 503s without a usable Retry-After
    first: float = math.inf  # monotonic time of the first send
    last: float = -math.inf  # ... and of the last answer or failure
    window: tuple[float, float] | None = None  # the measured period (closed loop)
    ok_in_window: int = 0  # successes answered within it

    def answer(
        self, status: int, sent: float, done: float, timing: float | None, right: bool | None
    ) -> None:
        self.statuses[status] += 1
        self.latency.setdefault(status, []).append(done - sent)
        if timing is not None:
            self.server.setdefault(status, []).append(timing)
        if right is not None:
            self.checked += 1
            self.wrong += not right
        if self.window and status in SUCCESS and done <= self.window[1]:
            self.ok_in_window += 1
        self._span(sent, done)

    def failure(self, kind: str, sent: float, done: float) -> None:
        self.errors[kind] += 1
        self._span(sent, done)

    def _span(self, sent: float, done: float) -> None:
        self.first = min(self.first, sent)
        self.last = max(self.last, done)

    @classmethod
    def merge(cls, parts: Iterable[Tally]) -> Tally:
        total = cls()
        for part in parts:
            total.statuses.update(part.statuses)
            total.errors.update(part.errors)
            for status, values in part.latency.items():
                total.latency.setdefault(status, []).extend(values)
            for status, values in part.server.items():
                total.server.setdefault(status, []).extend(values)
            total.checked += part.checked
            total.wrong += part.wrong
            total.no_retry_after += part.no_retry_after
            total.first = min(total.first, part.first)
            total.last = max(total.last, part.last)
            total.ok_in_window += part.ok_in_window
            if part.window is not None:
                start, end = total.window or part.window
                total.window = (min(start, part.window[0]), max(end, part.window[1]))
        return total

    def successes(self) -> list[float]:
        return [s for status in SUCCESS for s in self.latency.get(status, [])]

    def summary(self, wall: float | None = None) -> dict[str, Any]:
        """JSON-ready figures. Successes/s: those answered within the window over its
        length; without a window, all over `wall` (default: first send .. last answer)."""
        if wall is None:
            wall = self.last - self.first if self.last > self.first else 0.0
        ok = self.successes()
        if self.window is not None:
            span = self.window[1] - self.window[0]
            rate = self.ok_in_window / span if span > 0 else 0.0
        else:
            rate = len(ok) / wall if wall > 0 else 0.0
        ok_server = [v for status in SUCCESS for v in self.server.get(status, [])]
        busy = self.latency.get(503, [])
        busy_server = [v / 1000 for v in self.server.get(503, [])]
        result: dict[str, Any] = {
            "wall_s": round(wall, 3),
            "requests": sum(self.statuses.values()) + sum(self.errors.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "transport_errors": dict(sorted(self.errors.items())),
            "ok": len(ok),
            "ok_per_s": round(rate, 2),
            "checked": self.checked,
            "wrong": self.wrong,
            "503_without_retry_after": self.no_retry_after,
        }
        for name, values in (("ok", ok), ("503", busy)):
            for q in (50, 90, 99, 100):
                label = "max" if q == 100 else f"p{q}"
                result[f"{name}_{label}_ms"] = _rounded(percentile_ms(values, q))
        for name, values in (("ok", [v / 1000 for v in ok_server]), ("503", busy_server)):
            result[f"server_{name}_count"] = len(values)
            for q in (50, 99):
                result[f"server_{name}_p{q}_ms"] = _rounded(percentile_ms(values, q))
        return result


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)
