"""How the false-positive identification rate grows with the gallery size.

A stranger searching a gallery of N people is falsely recognised when the *nearest* of
N impostor distances is within tau, so FPIR(tau, N) rises with N even though the
per-pair FAR F(tau) stays put. Two models are fitted to the impostor distances:

- `independent`: the N distances drawn independently from the pooled impostor
  distribution, FPIR = 1 - (1 - F(tau))^N; F's lower tail, below what the data can show,
  is extrapolated with a power law F(t) = c t^k fitted to its lowest 1% (the usual
  minimum-domain behaviour).
- `weibull`: an empirical fit of the minimum of N impostor distances itself,
  FPIR = 1 - exp(-a N^b tau^k), i.e. log(-log(1 - FPIR)) linear in log N and log tau,
  fitted by least squares to FPIR measured at several N. b < 1 absorbs what independence
  misses: some probes are near many people ("wolves") and others near nobody, so the N
  chances of one probe are positively correlated.

`measured_fpir` gives the reference: over all random galleries of N entries drawn from
the set (exactly, by the hypergeometric law, no sampling noise).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.decision.open_set import GalleryModel, ModelKind
from app.lab.calibration.data import SearchMatrix
from app.lab.evaluation.metrics import FloatArray

TAIL_FRACTION = 0.01  # share of the lowest impostor distances the power-law tail is fitted to
QUANTILES = 200  # knots stored for the impostor CDF and the genuine distances


def _log_factorials(n: int) -> FloatArray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])


def _log_choose(log_fact: FloatArray, a: npt.NDArray[Any], b: int) -> FloatArray:
    """log C(a, b) for integer arrays a >= b >= 0."""
    return np.asarray(log_fact[a] - log_fact[b] - log_fact[a - b], dtype=np.float64)


def fpir_per_probe(search: SearchMatrix, tau: float, gallery_size: int) -> FloatArray:
    """Per non-mated probe: the chance that a random gallery of `gallery_size` of its
    impostor entries (drawn without replacement) holds one within tau, i.e.
    1 - C(M - m, N) / C(M, N) with M impostor entries of which m are within tau."""
    mask = search.impostor_mask()
    m_total = mask.sum(axis=1)
    if gallery_size > m_total.min():
        raise ValueError(f"a gallery of {gallery_size} needs more people than this set has")
    within = (np.where(mask, search.distances, np.inf) <= tau).sum(axis=1)
    log_fact = _log_factorials(int(m_total.max()))
    outside = m_total - within
    miss = np.zeros(outside.size)
    enough = outside >= gallery_size
    miss[enough] = np.exp(
        _log_choose(log_fact, outside[enough], gallery_size)
        - _log_choose(log_fact, m_total[enough], gallery_size)
    )
    return np.asarray(1.0 - miss, dtype=np.float64)


def measured_fpir(search: SearchMatrix, taus: npt.ArrayLike, gallery_size: int) -> FloatArray:
    """FPIR at each tau, averaged over every gallery of `gallery_size` impostor entries."""
    values = np.atleast_1d(np.asarray(taus, dtype=np.float64))
    return np.array([fpir_per_probe(search, float(t), gallery_size).mean() for t in values])


# --- fitting ------------------------------------------------------------------------------


def impostor_distances(search: SearchMatrix) -> FloatArray:
    """Every probe-to-other-person distance (+inf for failed probes, never accepted)."""
    return np.sort(search.distances[search.impostor_mask()])


def fit_impostor_cdf(
    impostor: FloatArray, knots: int = QUANTILES
) -> tuple[list[tuple[float, float]], float, float]:
    """CDF knots at F levels log-spaced from the 10th smallest distance up to F = 0.5,
    and the power-law tail (c, k) fitted to the lowest TAIL_FRACTION in log-log."""
    finite = np.sort(impostor[np.isfinite(impostor)])
    total = impostor.size
    if finite.size < 20:
        raise ValueError("too few impostor distances to model")
    levels = np.geomspace(10.0 / total, min(0.5, finite.size / total), knots)
    ranks = np.unique(np.clip(np.ceil(levels * total).astype(np.int64), 1, finite.size))
    taus, rates = finite[ranks - 1], ranks / total
    keep = np.concatenate([[True], np.diff(taus) > 0])
    cdf = [(float(t), float(f)) for t, f in zip(taus[keep], rates[keep], strict=True)]
    tail = max(int(TAIL_FRACTION * total), 10)
    lowest = finite[:tail]
    positive = lowest > 0
    x = np.log(lowest[positive])
    y = np.log(np.arange(1, tail + 1)[positive] / total)
    k, log_c = np.polyfit(x, y, 1)
    return cdf, float(math.exp(log_c)), float(k)


def fit_weibull(
    search: SearchMatrix, gallery_sizes: list[int], fpir_range: tuple[float, float] = (1e-3, 0.5)
) -> tuple[float, float, float]:
    """(log a, b, k) of FPIR = 1 - exp(-a N^b tau^k), least squares in
    log(-log(1 - FPIR)) over measured FPIR in `fpir_range` at each N."""
    impostor = impostor_distances(search)
    finite = impostor[np.isfinite(impostor)]
    taus = np.quantile(finite, np.geomspace(1e-6, 0.3, 60))
    taus = np.unique(taus[taus > 0])
    rows, targets = [], []
    for size in gallery_sizes:
        fpir = measured_fpir(search, taus, size)
        inside = (fpir >= fpir_range[0]) & (fpir <= fpir_range[1])
        for tau, rate in zip(taus[inside], fpir[inside], strict=True):
            rows.append([1.0, math.log(size), math.log(tau)])
            targets.append(math.log(-math.log1p(-rate)))
    if len(rows) < 3:
        raise ValueError("too few measured points to fit the gallery model")
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)
    log_a, b, k = (float(v) for v in solution)
    return log_a, b, k


def genuine_quantiles(search: SearchMatrix, knots: int = QUANTILES) -> tuple[list[float], float]:
    """Quantiles of the mated distances and the share of mated searches that failed."""
    rows, cols = search.mated_rows()
    mated = search.distances[rows, cols]
    if mated.size == 0:
        raise ValueError("no mated searches: every identity has one image")
    failed = ~np.isfinite(mated)
    finite = mated[~failed]
    levels = (np.arange(knots) + 0.5) / knots
    quantiles = np.quantile(finite, levels) if finite.size else np.zeros(0)
    return [float(q) for q in quantiles], float(failed.mean())


def largest_gallery(search: SearchMatrix) -> int:
    """The largest gallery size every probe can be measured with."""
    return int(search.impostor_mask().sum(axis=1).min())


def default_gallery_sizes(search: SearchMatrix) -> list[int]:
    """Powers of two up to half the largest measurable gallery."""
    smallest = largest_gallery(search)
    sizes, size = [], 1
    while size <= max(smallest // 2, 1):
        sizes.append(size)
        size *= 2
    return sizes


def fit_gallery_model(search: SearchMatrix, kind: ModelKind) -> GalleryModel:
    cdf, tail_c, tail_k = fit_impostor_cdf(impostor_distances(search))
    weibull = fit_weibull(search, default_gallery_sizes(search))
    genuine, genuine_failed = genuine_quantiles(search)
    return GalleryModel(kind, cdf, tail_c, tail_k, weibull, genuine, genuine_failed)


def fnir_per_probe(search: SearchMatrix, tau: float, gallery_size: int) -> FloatArray:
    """Per mated probe: the chance of a miss in a gallery of its own entry plus N - 1
    random impostor entries; a hit needs g <= tau and none of the N - 1 strictly nearer."""
    rows, cols = search.mated_rows()
    if rows.size == 0:
        raise ValueError("no mated searches")
    mask = search.impostor_mask()[rows]
    genuine = search.distances[rows, cols]
    m_total = mask.sum(axis=1)
    others = gallery_size - 1
    nearer = (np.where(mask, search.distances[rows], np.inf) < genuine[:, None]).sum(axis=1)
    log_fact = _log_factorials(int(m_total.max()))
    clear = np.zeros(rows.size)
    fits = (m_total - nearer >= others) & (m_total >= others)
    clear[fits] = np.exp(
        _log_choose(log_fact, (m_total - nearer)[fits], others)
        - _log_choose(log_fact, m_total[fits], others)
    )
    return np.asarray(1.0 - np.where(genuine <= tau, clear, 0.0), dtype=np.float64)


def measured_fnir(search: SearchMatrix, tau: float, gallery_size: int) -> float:
    return float(fnir_per_probe(search, tau, gallery_size).mean())


def validate(
    model: GalleryModel, search: SearchMatrix, fpir: float, sizes: list[int]
) -> list[dict[str, float]]:
    """Per gallery size: the model's tau for `fpir` and its expected FNIR, against the FPIR
    and FNIR measured at that tau on `search` (say, held-out identities)."""
    rows = []
    for size in sizes:
        tau = model.tau_for_fpir(fpir, size)
        rows.append(
            {
                "gallery_size": size,
                "tau": tau,
                "target_fpir": fpir,
                "measured_fpir": float(measured_fpir(search, [tau], size)[0]),
                "expected_fnir": model.expected_fnir(tau, size),
                "measured_fnir": measured_fnir(search, tau, size),
            }
        )
    return rows
