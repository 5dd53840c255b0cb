"""Retry-After from the rate at which image requests have been finishing."""

from __future__ import annotations

from app.api.admission import MAX_RETRY_AFTER_S, DrainRate


def test_retry_after_is_the_time_to_drain_what_is_in_progress() -> None:
    drain = DrainRate(window=8)
    assert drain.retry_after(64, now=0.0) == 1  # nothing measured yet: the minimum
    for k in range(8):  # one request finished every 0.25 s: 4 per second
        drain.record(k * 0.25)
    assert drain.retry_after(64, now=1.75) == 16  # 64 in progress / 4 per second
    assert drain.retry_after(2, now=1.75) == 1  # never below one second


def test_retry_after_is_capped_when_the_server_has_stalled() -> None:
    drain = DrainRate(window=4)
    for k in range(4):
        drain.record(k * 10.0)  # one every 10 s
    assert drain.retry_after(64, now=30.0) == MAX_RETRY_AFTER_S


def test_only_the_recent_window_counts() -> None:
    drain = DrainRate(window=4)
    for k in range(4):
        drain.record(k * 10.0)  # slow, long ago
    for k in range(4):
        drain.record(100.0 + k * 0.1)  # now 10 per second
    assert drain.retry_after(20, now=100.3) == 2
