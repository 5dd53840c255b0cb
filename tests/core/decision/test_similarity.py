"""The similarity map of the CompreFace-compatible API (app.core.decision.similarity)."""

from __future__ import annotations

import itertools
import math

import pytest

from app.core.decision.similarity import distance_at, similarity

TAUS = (0.2016, 0.2842, 0.36, 1.1)


@pytest.mark.parametrize("tau", TAUS)
def test_half_at_tau(tau: float) -> None:
    assert similarity(tau, tau) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("tau", TAUS)
def test_strictly_decreasing_and_within_unit_interval(tau: float) -> None:
    distances = [i * tau / 50 for i in range(0, 301)]  # 0 .. 6 tau
    values = [similarity(d, tau) for d in distances]
    assert all(0.0 <= v <= 1.0 for v in values)
    # strictly decreasing wherever floating point can still tell the values apart
    assert all(a > b for a, b in itertools.pairwise(values) if b > 1e-300)
    assert values[0] > 0.99 and values[-1] < 1e-10


@pytest.mark.parametrize("tau", TAUS)
def test_the_decision_is_the_half_cut(tau: float) -> None:
    below, above = math.nextafter(tau, 0), math.nextafter(tau, 10)
    assert similarity(below, tau) > 0.5 > similarity(above, tau)


def test_extremes_do_not_overflow() -> None:
    assert similarity(1e9, 0.3) == 0.0
    assert similarity(-1e9, 0.3) == 1.0
    assert similarity(4.0, 1e-6) == 0.0


@pytest.mark.parametrize("value", [0.05, 0.5, 0.8, 0.95])
def test_distance_at_inverts(value: float) -> None:
    tau = 0.2842
    assert similarity(distance_at(value, tau), tau) == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("tau", [0.0, -0.1, math.inf, math.nan])
def test_bad_tau_refused(tau: float) -> None:
    with pytest.raises(ValueError):
        similarity(0.1, tau)
