"""The decision rules, without a model or a database: which tau decides, and what the
1:N answer accepts."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.decision.cohort import Cohort
from app.core.decision.identify import decide, nearest_per_identity
from app.core.decision.open_set import GalleryModel
from app.core.decision.thresholds import Thresholds
from app.core.errors import ValidationFailed
from app.core.model.backbones.dlib_resnet import CALIBRATION

SERVICE = Thresholds(allowed=(0.0, 4.0))


def test_the_default_is_the_calibrations_per_task() -> None:
    assert SERVICE.verify(CALIBRATION) == CALIBRATION.tau_verify
    assert SERVICE.identify(CALIBRATION) == CALIBRATION.tau_identify
    assert CALIBRATION.tau_identify < CALIBRATION.tau_verify  # 1:N is stricter


def test_a_requested_threshold_wins_within_the_allowed_range() -> None:
    assert SERVICE.verify(CALIBRATION, 0.5) == 0.5
    assert SERVICE.identify(CALIBRATION, 0.25) == 0.25
    with pytest.raises(ValidationFailed, match=r"outside the allowed range \[0.0, 4.0\]"):
        SERVICE.verify(CALIBRATION, 4.5)
    with pytest.raises(ValidationFailed):
        SERVICE.check(-0.1)
    SERVICE.check(None)


def test_the_command_line_takes_any_threshold() -> None:
    assert Thresholds().verify(CALIBRATION, 9.0) == 9.0


def test_cohort_scoring_has_its_own_1_to_n_tau_only() -> None:
    cohort = Thresholds(allowed=(0.0, 4.0), cohort_tau=0.7)
    assert cohort.identify(CALIBRATION) == 0.7
    assert cohort.verify(CALIBRATION) == CALIBRATION.tau_verify


def test_several_faces_of_one_person_count_once_at_the_nearest() -> None:
    hits = [(11, 0.1), (12, 0.2), (21, 0.3), (99, 0.35), (22, 0.4), (31, 0.5)]
    owner = {11: "a", 12: "a", 21: "b", 22: "b", 31: "c"}  # 99: deleted since the search
    nearest = nearest_per_identity(hits, owner)
    assert list(nearest.items()) == [("a", (11, 0.1)), ("b", (21, 0.3)), ("c", (31, 0.5))]


def test_distance_scoring_accepts_within_tau_inclusive() -> None:
    probe = np.zeros(2, dtype=np.float32)
    decision = decide([0.3, 0.4, 0.5], 0.4, probe, None)
    assert (decision.score, decision.known, decision.within) == (0.3, True, [True, True, False])
    assert decide([], 0.4, probe, None).score is None


def test_cohort_scoring_divides_by_the_probes_cohort_scale() -> None:
    probe = np.zeros(2, dtype=np.float32)
    cohort = Cohort(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], dtype=np.float32), k=2)
    assert cohort.scale(probe) == 2.5  # mean of the two nearest: 1 and 4
    decision = decide([0.5, 1.5], 0.4, probe, cohort)
    assert decision.score == 0.5 / 2.5
    assert decision.known and decision.within == [True, False]


def test_margin_is_the_runner_ups_score_minus_the_best_on_the_deciding_scale() -> None:
    probe = np.zeros(2, dtype=np.float32)
    assert decide([0.3, 0.45, 0.5], 0.4, probe, None).margin == pytest.approx(0.15)
    assert decide([0.3], 0.4, probe, None).margin is None  # nobody else enrolled
    assert decide([], 0.4, probe, None).margin is None
    cohort = Cohort(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], dtype=np.float32), k=2)
    assert decide([0.5, 1.5], 0.4, probe, cohort).margin == pytest.approx(1.0 / 2.5)


def test_stranger_rarity_is_one_minus_fpir_and_falls_with_the_distance() -> None:
    knots = [(0.1, 0.001), (0.2, 0.01), (0.4, 0.5), (0.8, 1.0)]
    model = GalleryModel("independent", knots, 0.1, 2.0, (0.0, 1.0, 2.0), [0.1], 0.0)
    rarity = [model.stranger_rarity(d, 100) for d in (0.0, 0.05, 0.1, 0.2, 0.4)]
    assert rarity == sorted(rarity, reverse=True) and rarity[0] == 1.0
    assert rarity[3] == pytest.approx((1 - 0.01) ** 100)  # 1 - FPIR(0.2, 100)
    assert model.stranger_rarity(0.2, 1) > model.stranger_rarity(0.2, 100)  # more chances
