"""The ROC a calibration stores (app/lab/calibration/roc.py): rates counted as the
protocol counts them, the operating point on the curve, a bounded number of points."""

from __future__ import annotations

import numpy as np
import pytest

from app.lab.calibration import roc
from app.lab.calibration.threshold import tau_for_far
from app.lab.evaluation import metrics


def test_points_are_the_rates_at_their_tau_with_the_operating_point() -> None:
    genuine = np.array([0.05, 0.1, 0.2, 0.2, np.inf])  # a failed image: never accepted
    impostor = np.array([0.15, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    tau = tau_for_far(impostor, 0.25)  # just below 0.4: 2 of 8 accepted
    curve = roc.roc_points(genuine, impostor, tau)
    assert (curve["genuine_pairs"], curve["impostor_pairs"]) == (5, 8)
    points = curve["points"]
    taus = [t for t, _, _ in points]
    assert taus == sorted(set(taus)) and taus[0] == 0.0
    for t, far, tar in points:
        assert far == metrics.far_at_threshold(impostor, t)
        assert tar == metrics.tar_at_threshold(genuine, t)
    (point,) = [p for p in points if p[0] == tau]
    assert point[1:] == [0.25, 0.8]
    assert points[-1][1] == 1.0 and points[-1][2] == 0.8  # the failure stays refused


def test_many_pairs_make_a_few_hundred_points_down_to_one_impostor() -> None:
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(0.3, 0.1, 5_000), rng.normal(1.0, 0.15, 200_000)
    tau = tau_for_far(impostor, 1e-4)
    points = roc.roc_points(genuine, impostor, tau)["points"]
    assert len(points) <= roc.FAR_STEPS + roc.TAR_STEPS + 2
    fars = [far for _, far, _ in points if far > 0]
    assert min(fars) == 1 / impostor.size  # the log axis reaches the first impostor
    assert [p[1:] for p in points if p[0] == tau] == [
        [metrics.far_at_threshold(impostor, tau), metrics.tar_at_threshold(genuine, tau)]
    ]


def test_no_pairs_of_a_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="genuine and impostor"):
        roc.roc_points(np.array([]), np.array([0.5]), 0.4)
