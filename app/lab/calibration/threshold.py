"""Threshold selection for a target false-accept rate, and its confidence intervals.

Pairs that share an image or a person are not independent, so a binomial interval over
pairs is too narrow. The intervals here resample *identities* (a cluster bootstrap): the
counts of accepted pairs are aggregated per identity pair once, and each replicate is a
weighted sum over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.lab.evaluation import metrics
from app.lab.evaluation.metrics import FloatArray

IntArray = npt.NDArray[np.int64]
BOOTSTRAP_REPLICATES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def tau_for_far(impostor: FloatArray, far: float) -> float:
    """The largest tau whose FAR on these impostor distances does not exceed `far`
    (PROTOCOL.md section 2's rule)."""
    return metrics.threshold_for_rate(impostor, far)


@dataclass(frozen=True)
class PairCounts:
    """Accepted and total pairs per identity pair at one tau (symmetric matrices).

    Off the diagonal: impostor pairs between identities i and j. On the diagonal: genuine
    pairs of identity i (unordered, without an image paired with itself).
    """

    accepted: FloatArray  # (k, k)
    total: FloatArray  # (k, k)

    def far(self, weights: FloatArray) -> float:
        return _ratio(_off_diagonal(self.accepted, weights), _off_diagonal(self.total, weights))

    def tar(self, weights: FloatArray) -> float:
        accepted = float(weights @ np.diag(self.accepted))
        return _ratio(accepted, float(weights @ np.diag(self.total)))


def _ratio(count: float, total: float) -> float:
    """NaN when a resample has no pairs of a kind (say, one person drawn every time)."""
    return count / total if total > 0 else math.nan


def _off_diagonal(matrix: FloatArray, weights: FloatArray) -> float:
    """Sum over unordered pairs of distinct identities, each drawn weights[i] times; two
    draws of one identity are the same person, so their pairs are no impostor pairs."""
    full = float(weights @ matrix @ weights)
    same = float(np.sum(weights**2 * np.diag(matrix)))
    return (full - same) / 2.0


def pair_counts(distances: FloatArray, labels: IntArray, tau: float) -> PairCounts:
    """Aggregate a full image-by-image distance matrix (labels 0..k-1) at `tau`.

    Failed images carry +inf distances and so are never accepted.
    """
    k = int(labels.max()) + 1
    onehot = np.zeros((labels.size, k))
    onehot[np.arange(labels.size), labels] = 1.0
    accepted = onehot.T @ (distances <= tau).astype(np.float64) @ onehot
    sizes = onehot.sum(axis=0)
    total = np.outer(sizes, sizes)
    # the diagonal counted ordered pairs and every image with itself (d = 0 unless failed)
    self_accepted = onehot.T @ (np.diag(distances) <= tau).astype(np.float64)
    np.fill_diagonal(accepted, (np.diag(accepted) - self_accepted) / 2.0)
    np.fill_diagonal(total, sizes * (sizes - 1) / 2.0)
    return PairCounts(accepted=accepted, total=total)


def bootstrap_rates(
    counts: PairCounts,
    replicates: int = BOOTSTRAP_REPLICATES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[Interval, Interval]:
    """(FAR, TAR) at the counts' tau with percentile intervals over resampled identities."""
    k = counts.accepted.shape[0]
    ones = np.ones(k)
    rng = np.random.default_rng(seed)
    fars, tars = [], []
    for _ in range(replicates):
        weights = rng.multinomial(k, np.full(k, 1.0 / k)).astype(np.float64)
        fars.append(counts.far(weights))
        tars.append(counts.tar(weights))
    return (
        _interval(counts.far(ones), np.array(fars), confidence),
        _interval(counts.tar(ones), np.array(tars), confidence),
    )


def _interval(value: float, samples: FloatArray, confidence: float) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(value, value, value)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(value), float(low), float(high))


def bootstrap_rate(
    hits: npt.NDArray[Any],
    groups: IntArray,
    replicates: int = BOOTSTRAP_REPLICATES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """A rate over searches (FPIR, FNIR; `hits` may be per-search probabilities) with an
    interval that resamples the probes' identities (`groups`), since one person's
    photos fail together."""
    if hits.size == 0:
        raise ValueError("no searches")
    groups = np.unique(groups, return_inverse=True)[1]
    k = int(groups.max()) + 1
    per_group_hits = np.bincount(groups, weights=hits.astype(np.float64), minlength=k)
    per_group_total = np.bincount(groups, minlength=k).astype(np.float64)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(k, np.full(k, 1.0 / k), size=replicates).astype(np.float64)
    samples = (weights @ per_group_hits) / (weights @ per_group_total)
    return _interval(float(hits.mean()), samples, confidence)
