"""Accuracy figures of the shared PROTOCOL.md, as pure functions over distances.

Distances are squared Euclidean: smaller means more alike, and a pair (or search) is a
match when d <= tau. Failed images are encoded in the distances themselves:

- section 1 (LFW pairs): NaN, which counts as a wrong decision at every tau, because
  both `NaN <= tau` and `NaN > tau` are False;
- sections 2 and 3: +inf, which is a non-match at every finite tau, i.e. a false
  non-match for a genuine pair / mated search and a correct rejection for an impostor
  pair / non-mated search. Every threshold these functions return is finite, so +inf
  never matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _as_distances(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64).ravel()


# --- section 1: LFW pair accuracy -------------------------------------------------------


@dataclass(frozen=True)
class PairFold:
    """Distances of one fold's pairs; `same[i]` is True for a matched (same-person) pair."""

    distances: FloatArray
    same: BoolArray


@dataclass(frozen=True)
class FoldResult:
    tau: float  # chosen on the other folds
    accuracy: float  # on this fold


def pair_decisions_correct(distances: FloatArray, same: BoolArray, tau: float) -> BoolArray:
    """Per pair: is the decision at tau right? NaN distances are wrong either way."""
    return np.where(same, distances <= tau, distances > tau)


def pair_accuracy(distances: npt.ArrayLike, same: npt.ArrayLike, tau: float) -> float:
    d, s = _as_distances(distances), np.asarray(same, dtype=bool).ravel()
    return float(np.mean(pair_decisions_correct(d, s, tau)))


def best_accuracy_threshold(distances: npt.ArrayLike, same: npt.ArrayLike) -> float:
    """The tau among the midpoints of the sorted distances that maximises pair accuracy.

    Failed pairs (NaN) are wrong at every tau, so they do not move the choice. Among equally
    good midpoints the smallest is taken. With fewer than two usable distances there are no
    midpoints: the single distance itself (or 0.0 with none) is returned.
    """
    d, s = _as_distances(distances), np.asarray(same, dtype=bool).ravel()
    finite = np.isfinite(d)
    ordered = np.sort(d[finite])
    if ordered.size < 2:
        return float(ordered[0]) if ordered.size else 0.0
    candidates = (ordered[:-1] + ordered[1:]) / 2
    genuine = np.sort(d[finite & s])
    impostor = np.sort(d[finite & ~s])
    genuine_accepted = np.searchsorted(genuine, candidates, side="right")
    impostor_rejected = impostor.size - np.searchsorted(impostor, candidates, side="right")
    return float(candidates[np.argmax(genuine_accepted + impostor_rejected)])


def lfw_fold_results(folds: Sequence[PairFold]) -> list[FoldResult]:
    """For each fold k: tau_k chosen on the other folds, accuracy measured on fold k."""
    results = []
    for k, fold in enumerate(folds):
        others = [other for j, other in enumerate(folds) if j != k]
        if others:
            tau = best_accuracy_threshold(
                np.concatenate([o.distances for o in others]),
                np.concatenate([o.same for o in others]),
            )
        else:  # a single fold has nothing else to train on; choose on itself
            tau = best_accuracy_threshold(fold.distances, fold.same)
        results.append(FoldResult(tau=tau, accuracy=pair_accuracy(fold.distances, fold.same, tau)))
    return results


def lfw_accuracy(folds: Sequence[PairFold]) -> tuple[float, float]:
    """(mean, std) of the per-fold accuracies.

    The std is the population standard deviation over the folds (ddof=0): PROTOCOL.md asks
    for "standard deviation over folds" and does not say more. Note that LFW's own
    README reports the standard error of the mean with ddof=1 instead.
    """
    if not folds:
        raise ValueError("no folds")
    accuracies = np.array([result.accuracy for result in lfw_fold_results(folds)])
    return float(accuracies.mean()), float(accuracies.std(ddof=0))


# --- thresholds for a target false-positive rate (sections 2 and 3) --------------------


def rate_at_threshold(distances: npt.ArrayLike, tau: float) -> float:
    """Fraction of distances <= tau (a FAR / FPIR for negatives, a TAR for positives)."""
    d = _as_distances(distances)
    if d.size == 0:
        raise ValueError("no distances")
    return float(np.count_nonzero(d <= tau) / d.size)


def largest_count_within(target: float, total: int) -> int:
    """The largest count c with c / total <= target, compared exactly as the rate is computed."""
    count = min(total, max(0, int(np.floor(target * total))))
    # floor(target * total) can be off by one through rounding; settle it with the division.
    while count < total and (count + 1) / total <= target:
        count += 1
    while count > 0 and count / total > target:
        count -= 1
    return count


def threshold_for_rate(negative_distances: npt.ArrayLike, target: float) -> float:
    """The largest float64 tau whose false-positive rate (fraction of d <= tau) <= target.

    With the negatives sorted, s[c] (c = the largest count allowed) is the first distance
    whose acceptance would push the rate over the target, so the answer is the float just
    below it, np.nextafter(s[c], -inf); ties at s[c] are therefore all rejected. When every
    finite negative may be accepted the answer is the largest finite float (so failures,
    at +inf, stay rejected).
    """
    d = np.sort(_as_distances(negative_distances))
    if d.size == 0:
        raise ValueError("no negative distances")
    allowed = largest_count_within(target, d.size)
    limit = d[allowed] if allowed < d.size else np.inf
    return float(np.nextafter(limit, -np.inf))


# --- section 2: verification over all pairs --------------------------------------------


def far_at_threshold(impostor: npt.ArrayLike, tau: float) -> float:
    """False accept rate: impostor pairs with d <= tau."""
    return rate_at_threshold(impostor, tau)


def tar_at_threshold(genuine: npt.ArrayLike, tau: float) -> float:
    """True accept rate: genuine pairs with d <= tau."""
    return rate_at_threshold(genuine, tau)


def tar_at_far(genuine: npt.ArrayLike, impostor: npt.ArrayLike, far: float) -> tuple[float, float]:
    """(TAR, tau) with tau = the largest threshold whose FAR does not exceed `far`."""
    tau = threshold_for_rate(impostor, far)
    return tar_at_threshold(genuine, tau), tau


def roc_auc(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> float:
    """Area under the ROC: P(impostor distance > genuine distance), ties counted half.

    This Mann-Whitney form equals the area under the ROC curve through every threshold,
    closed by a straight segment to (FAR, TAR) = (1, 1); failures (+inf on both sides)
    are ties and fall on that segment.
    """
    g, imp = _as_distances(genuine), np.sort(_as_distances(impostor))
    if g.size == 0 or imp.size == 0:
        raise ValueError("need genuine and impostor distances")
    not_above = np.searchsorted(imp, g, side="right")
    below = np.searchsorted(imp, g, side="left")
    wins = (imp.size - not_above).sum(dtype=np.float64)
    ties = (not_above - below).sum(dtype=np.float64)
    return float((wins + 0.5 * ties) / (g.size * imp.size))


def error_rate_curve(genuine: FloatArray, impostor: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(FAR, FRR) below every distance, at every distinct finite distance, and at the end.

    The first point is (0, 1) (tau below all distances) and the last is (1, 0), the same
    closing point as `roc_auc`, so the curve always crosses FAR = FRR.
    """
    g, imp = np.sort(genuine), np.sort(impostor)
    values = np.concatenate([g, imp])
    taus = np.unique(values[np.isfinite(values)])
    far = np.searchsorted(imp, taus, side="right") / imp.size
    frr = 1.0 - np.searchsorted(g, taus, side="right") / g.size
    return np.concatenate([[0.0], far, [1.0]]), np.concatenate([[1.0], frr, [0.0]])


def equal_error_rate(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> float:
    """EER: where the ROC, drawn as straight lines between its threshold points, meets FAR = FRR.

    Points as in `error_rate_curve`. At the first point with FAR >= FRR, the segment from
    the previous point (FAR_a < FRR_a) to it (FAR_b >= FRR_b) is intersected with FAR = FRR:
    t = (FRR_a - FAR_a) / ((FRR_a - FAR_a) - (FRR_b - FAR_b)), EER = FAR_a + t (FAR_b - FAR_a).
    When FAR = FRR exactly at a threshold that value is the EER.
    """
    g, imp = _as_distances(genuine), _as_distances(impostor)
    if g.size == 0 or imp.size == 0:
        raise ValueError("need genuine and impostor distances")
    far, frr = error_rate_curve(g, imp)
    b = int(np.argmax(far >= frr))  # exists: the last point has FAR 1 >= FRR 0
    a = b - 1  # b >= 1 because the first point has FAR 0 < FRR 1
    gap_a, gap_b = frr[a] - far[a], frr[b] - far[b]
    t = gap_a / (gap_a - gap_b)
    return float(far[a] + t * (far[b] - far[a]))


# --- section 3: open-set one-shot identification ---------------------------------------


@dataclass(frozen=True)
class OpenSetSearches:
    """Nearest-gallery results of the mated and non-mated searches.

    A failed probe has distance +inf and `mated_correct` False (a miss at every tau).
    """

    mated_distances: FloatArray
    mated_correct: BoolArray  # the nearest gallery entry is the probe's identity
    non_mated_distances: FloatArray


def rank1_accuracy(searches: OpenSetSearches) -> float:
    if searches.mated_correct.size == 0:
        raise ValueError("no mated searches")
    return float(np.mean(searches.mated_correct))


def fpir_at_threshold(non_mated_distances: npt.ArrayLike, tau: float) -> float:
    """False positive identification rate: non-mated searches with nearest d <= tau."""
    return rate_at_threshold(non_mated_distances, tau)


def fnir_at_threshold(searches: OpenSetSearches, tau: float) -> float:
    """False negative identification rate: mated searches that are wrong or have d > tau."""
    if searches.mated_correct.size == 0:
        raise ValueError("no mated searches")
    hits = searches.mated_correct & (searches.mated_distances <= tau)
    return float(1.0 - np.mean(hits))


def fnir_at_fpir(searches: OpenSetSearches, fpir: float) -> tuple[float, float]:
    """(FNIR, tau), tau = the largest threshold whose FPIR on the non-mated searches <= fpir."""
    tau = threshold_for_rate(searches.non_mated_distances, fpir)
    return fnir_at_threshold(searches, tau), tau
