"""Open-set scores that need nothing from the operator: the gallery is its own cohort.

Every score is smaller = accept, and chooses its own candidate (the gallery entry with the
smallest score). With d(p, g) the squared distance from probe p to entry g:

- `raw`: d1, the nearest distance (what the service decides on today);
- `margin`: d1 - beta (d2 - d1) (parameter beta);
- `cohort`: d1 / mean of the probe's k nearest faces in a FIXED cohort of never-enrolled
  people (needs an operator file; the reference);
- `gcohort` (probe side): d1 / mean(d2 .. d_{k+1}), the probe's next k gallery distances;
- `gside` (gallery side): d(p, g) / c_g, c_g the mean of entry g's k nearest OTHER
  entries: an entry in a crowded part of the space must be matched more closely. c_g is
  known at enrolment time (and refreshed for the k neighbours of a new entry);
- `gsym`: d(p, g) / sqrt(c_p c_g), c_p = mean(d2 .. d_{k+1}) as in `gcohort`;
- `asnorm`: adaptive symmetric score normalisation with the gallery as the cohort:
  ((d - mu_p) / sd_p + (d - mu_g) / sd_g) / 2, the means and deviations over the probe's
  next k gallery distances and over g's k nearest other entries.

A gallery-based score needs at least k + 1 entries (a probe's candidate and k others);
`usable` says whether a gallery is large enough, and callers fall back to `raw` below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.lab.evaluation.metrics import FloatArray

IntArray = npt.NDArray[np.int64]

GALLERY_METHODS = ("gcohort", "gside", "gsym", "asnorm")
METHODS = ("raw", "margin", "cohort", *GALLERY_METHODS)
GRIDS: dict[str, tuple[float, ...]] = {
    "raw": (0.0,),
    "margin": (0.0, 0.25, 0.5, 1.0, 2.0),
    "cohort": (5, 10, 20, 50),
    "gcohort": (1, 3, 5, 10, 20),
    "gside": (1, 3, 5, 10, 20),
    "gsym": (1, 3, 5, 10, 20),
    "asnorm": (3, 5, 10, 20, 50),
}
_TINY = 1e-12


def l2_normalised(vectors: FloatArray) -> FloatArray:
    """Rows divided by their length; zero rows (failed images) stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float64)


def usable(method: str, parameter: float, gallery_size: int) -> bool:
    """Whether `method` can be computed with a gallery of `gallery_size` entries."""
    if method in GALLERY_METHODS:
        return gallery_size >= int(parameter) + 1
    return gallery_size >= (2 if method == "margin" else 1)


@dataclass(frozen=True)
class GalleryStats:
    """Per entry: its sorted distances to the other entries (the gallery side's cohort)."""

    others: FloatArray  # (m, m - 1), ascending

    @classmethod
    def of(cls, gallery_to_gallery: FloatArray) -> GalleryStats:
        d = np.array(gallery_to_gallery, dtype=np.float64)
        np.fill_diagonal(d, np.inf)
        return cls(others=np.sort(d, axis=1)[:, : max(d.shape[0] - 1, 0)])

    def nearest(self, k: int) -> FloatArray:
        return self.others[:, :k]


def score(
    method: str,
    parameter: float,
    distances: FloatArray,
    gallery: GalleryStats,
    cohort: FloatArray | None = None,
) -> tuple[FloatArray, IntArray]:
    """(score, candidate entry) per probe row of `distances` (probes x entries).

    `cohort`: each probe's sorted distances to the fixed cohort (only for `cohort`).
    Rows of +inf (failed probes) come out +inf.
    """
    n, m = distances.shape
    if not usable(method, parameter, m):
        raise ValueError(f"{method} with parameter {parameter:g} needs a larger gallery than {m}")
    failed: npt.NDArray[np.bool_] = np.asarray(~np.isfinite(distances).all(axis=1), dtype=bool)
    safe = np.where(failed[:, None], 0.0, distances)
    ordered = np.sort(safe, axis=1)
    k = int(parameter)
    if method in ("raw", "margin", "cohort", "gcohort"):
        candidate = np.argmin(safe, axis=1)
        d1 = ordered[:, 0]
        if method == "raw":
            values = d1
        elif method == "margin":
            values = d1 - parameter * (ordered[:, 1] - d1)
        elif method == "cohort":
            if cohort is None:
                raise ValueError("the cohort score needs the probes' cohort distances")
            values = d1 / np.maximum(cohort[:, :k].mean(axis=1), _TINY)
        else:
            values = d1 / np.maximum(ordered[:, 1 : 1 + k].mean(axis=1), _TINY)
    else:
        matrix = _pairwise_score(method, k, safe, ordered, gallery)
        candidate = np.argmin(matrix, axis=1)
        values = matrix[np.arange(n), candidate]
    values = np.where(failed, np.inf, values)
    return np.asarray(values, dtype=np.float64), candidate.astype(np.int64)


def _pairwise_score(
    method: str, k: int, distances: FloatArray, ordered: FloatArray, gallery: GalleryStats
) -> FloatArray:
    entry = gallery.nearest(k)
    probe_rest = ordered[:, 1 : 1 + k]
    if method == "gside":
        return distances / np.maximum(entry.mean(axis=1), _TINY)[None, :]
    if method == "gsym":
        c_p = np.maximum(probe_rest.mean(axis=1), _TINY)
        c_g = np.maximum(entry.mean(axis=1), _TINY)
        return np.asarray(distances / np.sqrt(c_p[:, None] * c_g[None, :]), dtype=np.float64)
    if method == "asnorm":
        z_p = (distances - probe_rest.mean(axis=1)[:, None]) / (
            probe_rest.std(axis=1)[:, None] + _TINY
        )
        z_g = (distances - entry.mean(axis=1)[None, :]) / (entry.std(axis=1)[None, :] + _TINY)
        return np.asarray((z_p + z_g) / 2.0, dtype=np.float64)
    raise ValueError(f"unknown score {method!r}")
