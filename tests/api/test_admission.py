"""Admission: the service rate it measures, the limit and Retry-After it derives."""

from __future__ import annotations

from app.api.admission import MAX_RETRY_AFTER_S, AdmissionMiddleware, ServiceRate
from app.core.telemetry import Metrics


def busy_period(rate: ServiceRate, start: float, count: int, every: float) -> float:
    """`count` requests in a row, each `every` seconds, one at a time; returns the end."""
    now = start
    for _ in range(count):
        rate.started(now, 0)
        now += every
        rate.finished(now, 0)
    return now


def test_rate_is_unknown_until_enough_finished() -> None:
    rate = ServiceRate()
    busy_period(rate, 0.0, 7, 0.1)
    assert rate.per_second() is None
    busy_period(rate, 1.0, 1, 0.1)
    assert rate.per_second() is not None


def test_idle_time_between_bursts_does_not_lower_the_rate() -> None:
    rate = ServiceRate()
    end = busy_period(rate, 0.0, 10, 0.25)  # 4 per second while busy
    busy_period(rate, end + 100.0, 10, 0.25)  # the same after 100 s of nothing
    per_second = rate.per_second()
    assert per_second is not None and abs(per_second - 4.0) < 1e-6


def test_overlapping_requests_count_busy_time_once() -> None:
    rate = ServiceRate()
    # 10 requests in flight together from t=0, finishing one every 0.1 s: 10 per second.
    for _ in range(10):
        rate.started(0.0, 0 if _ == 0 else _)
    for i in range(10):
        rate.finished(0.1 * (i + 1), 9 - i)
    per_second = rate.per_second()
    assert per_second is not None and abs(per_second - 10.0) < 1e-6


def middleware(ceiling: int, deadline_s: float) -> AdmissionMiddleware:
    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    return AdmissionMiddleware(
        app, limit=ceiling, deadline_s=deadline_s, window_s=2.5, floor=FLOOR, metrics=Metrics()
    )


FLOOR = 4


def test_limit_follows_the_measured_rate_within_floor_and_ceiling() -> None:
    door = middleware(ceiling=64, deadline_s=10.0)
    assert door.limit == FLOOR  # nothing measured
    busy_period(door.rate, 0.0, 20, 0.25)  # 4/s: 10 drain in the 2.5 s window
    assert door.limit == 10
    short = middleware(ceiling=64, deadline_s=2.0)  # the window is at most half of it
    busy_period(short.rate, 0.0, 20, 0.25)
    assert short.limit == 4
    slow = middleware(ceiling=64, deadline_s=10.0)
    busy_period(slow.rate, 0.0, 20, 10.0)  # 0.1/s: 0.25 fits, the floor still admits a few
    assert slow.limit == FLOOR
    fast = middleware(ceiling=64, deadline_s=10.0)
    busy_period(fast.rate, 0.0, 20, 0.001)  # 1000/s: the configured ceiling holds
    assert fast.limit == 64


def test_retry_after_is_the_drain_time_of_what_is_in_flight() -> None:
    door = middleware(ceiling=64, deadline_s=10.0)
    assert door.retry_after() == 1  # nothing measured yet: the minimum
    busy_period(door.rate, 0.0, 20, 0.25)  # 4 per second
    door.in_flight = 64
    assert door.retry_after() == 16
    door.in_flight = 2
    assert door.retry_after() == 1  # never below one second
    busy_period(door.rate, 100.0, 128, 100.0)  # 0.01 per second
    door.in_flight = 64
    assert door.retry_after() == MAX_RETRY_AFTER_S
