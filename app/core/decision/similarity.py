"""A similarity in [0, 1] for clients that expect one (the CompreFace-compatible API).

    similarity(d) = 1 / (1 + exp((d - tau) / w)),   w = tau / 6

d is our squared L2 distance and tau the threshold that decided the answer, so
similarity > 0.5 exactly where d < tau (a match), 0.5 at tau, strictly decreasing in d.
The width tau/6 puts d = tau/2 (a typical genuine pair) near 0.95 and d = 2 tau near
0.0025, so a client's own cut of 0.5 reproduces our decision and higher cuts are stricter.
It is a monotone map for ranking and thresholding, not a probability of anything.
"""

from __future__ import annotations

import math

WIDTH_PER_TAU = 1 / 6


def similarity(distance: float, tau: float) -> float:
    """In [0, 1]; 0.5 at `tau`; larger for smaller distances."""
    if not tau > 0 or not math.isfinite(tau):
        raise ValueError(f"tau must be a positive finite number, not {tau}")
    z = (distance - tau) / (tau * WIDTH_PER_TAU)
    if z >= 0:  # written both ways so that exp never overflows
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


def distance_at(value: float, tau: float) -> float:
    """The inverse: the distance whose similarity is `value` (0 < value < 1); lets a
    client's similarity cut be read as a distance threshold."""
    if not 0 < value < 1:
        raise ValueError("similarity must lie strictly between 0 and 1")
    return tau + tau * WIDTH_PER_TAU * math.log((1 - value) / value)
