"""Distance between embeddings and the match decision."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def squared_distance(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """d = ||a - b||^2, computed in float64 so that thresholds compare exactly."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.dot(diff, diff))


def squared_distances(query: npt.ArrayLike, gallery: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Distances from one query (d,) to every row of a gallery (n, d)."""
    diff = np.asarray(gallery, dtype=np.float64) - np.asarray(query, dtype=np.float64)
    return np.einsum("ij,ij->i", diff, diff)


def is_match(distance: float, tau: float) -> bool:
    return distance <= tau
