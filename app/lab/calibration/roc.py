"""The ROC curve a calibration stores with its report (`report["roc"]`): FAR and TAR
over tau on the calibration pairs, downsampled to a few hundred points so that the
service can hand it to a plot (GET /v1/models/{name}/calibration).

The points are spaced for a log FAR axis: tau at the impostor distances of log-spaced
ranks (FAR 1/n, ..., 1), plus the genuine distances' quantiles (where TAR moves), plus
the calibrated tau itself, so the operating point lies on the curve exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.lab.evaluation.metrics import FloatArray

FAR_STEPS = 160  # log-spaced impostor ranks
TAR_STEPS = 100  # genuine quantiles


def roc_points(genuine: FloatArray, impostor: FloatArray, tau: float) -> dict[str, Any]:
    """{"points": [[tau, far, tar], ...] by increasing tau, "genuine_pairs",
    "impostor_pairs"}; rates as `metrics.rate_at_threshold` counts them (d <= tau)."""
    genuine = np.sort(np.asarray(genuine, dtype=np.float64))
    impostor = np.sort(np.asarray(impostor, dtype=np.float64))
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError("a ROC needs genuine and impostor pairs")
    finite_impostor = impostor[np.isfinite(impostor)]
    finite_genuine = genuine[np.isfinite(genuine)]
    candidates = [np.array([0.0])]
    if finite_impostor.size:
        ranks = np.unique(np.geomspace(1, finite_impostor.size, FAR_STEPS).round().astype(int))
        candidates.append(finite_impostor[ranks - 1])
    if finite_genuine.size:
        candidates.append(np.quantile(finite_genuine, np.linspace(0.0, 1.0, TAR_STEPS)))
    if np.isfinite(tau):
        candidates.append(np.array([tau]))
    taus = np.unique(np.concatenate(candidates))
    far = np.searchsorted(impostor, taus, side="right") / impostor.size
    tar = np.searchsorted(genuine, taus, side="right") / genuine.size
    return {
        "points": [[float(t), float(f), float(a)] for t, f, a in zip(taus, far, tar, strict=True)],
        "genuine_pairs": int(genuine.size),
        "impostor_pairs": int(impostor.size),
    }
