"""The decision rules, without a model or a database: which tau decides, and what the
1:N answer accepts."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.decision.calibration import ActiveCalibration
from app.core.decision.cohort import BuiltInCohort, Cohort
from app.core.decision.identify import decide, nearest_per_identity
from app.core.decision.open_set import GalleryModel
from app.core.decision.open_set_rule import rule_for
from app.core.decision.thresholds import Thresholds
from app.core.errors import ModelUnavailable, ValidationFailed
from app.core.model.backbones.dlib_resnet import CALIBRATION, CALIBRATION_L2
from app.core.store.rows.calibrations import StoredCalibration

SERVICE = Thresholds(allowed=(0.0, 4.0))


def test_the_default_is_the_calibrations_per_task() -> None:
    assert SERVICE.verify(CALIBRATION) == CALIBRATION.tau_verify
    assert SERVICE.identify(CALIBRATION.tau_identify) == CALIBRATION.tau_identify
    assert CALIBRATION.tau_identify < CALIBRATION.tau_verify  # 1:N is stricter


def test_a_requested_threshold_wins_within_the_allowed_range() -> None:
    assert SERVICE.verify(CALIBRATION, 0.5) == 0.5
    assert SERVICE.identify(CALIBRATION.tau_identify, 0.25) == 0.25
    with pytest.raises(ValidationFailed, match=r"outside the allowed range \[0.0, 4.0\]"):
        SERVICE.verify(CALIBRATION, 4.5)
    with pytest.raises(ValidationFailed):
        SERVICE.check(-0.1)
    SERVICE.check(None)


def test_the_command_line_takes_any_threshold() -> None:
    assert Thresholds().verify(CALIBRATION, 9.0) == 9.0


def test_the_open_set_rule_follows_the_calibration_the_gallery_and_the_setting() -> None:
    built_in = BuiltInCohort.of(CALIBRATION_L2.cohort or {}, 128)
    shipped = ActiveCalibration(CALIBRATION_L2, None)
    small = rule_for(shipped, built_in.min_gallery - 1, built_in, None)
    assert (small.name, small.cohort, small.tau) == ("distance", None, CALIBRATION_L2.tau_identify)
    for size in (built_in.min_gallery, 1000):
        rule = rule_for(shipped, size, built_in, None)
        assert rule.name == "built_in_cohort" and rule.cohort is built_in.cohort
        assert rule.tau == built_in.tau(size)
    assert built_in.tau(1000) < built_in.tau(100)  # stricter as strangers get more chances
    stored = ActiveCalibration(CALIBRATION_L2, StoredCalibration(report={}))
    assert rule_for(stored, 1000, built_in, None).name == "distance"  # the operator's own
    operator = Cohort(np.ones((3, 128), dtype=np.float32), 2)
    chosen = rule_for(shipped, 1000, built_in, (operator, 0.7))
    assert (chosen.name, chosen.cohort, chosen.tau) == ("cohort_file", operator, 0.7)


def test_the_built_in_cohort_is_drawn_the_same_at_every_start() -> None:
    spec = CALIBRATION_L2.cohort or {}
    first, again = (BuiltInCohort.of(spec, 128).cohort.vectors for _ in range(2))
    assert first.shape == (10_000, 128) and np.array_equal(first, again)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ModelUnavailable):
        BuiltInCohort.of(spec, 512)


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


def test_a_distance_cap_rejects_a_candidate_whatever_its_score() -> None:
    probe = np.zeros(2, dtype=np.float32)
    cohort = Cohort(np.array([[2.0, 0.0], [0.0, 2.0]], dtype=np.float32), 2)  # c = 4
    decision = decide([0.3, 0.5], 0.2, probe, cohort, distance_cap=0.4)
    assert decision.score == pytest.approx(0.075) and decision.within == [True, False]
    capped = decide([0.45, 0.5], 0.2, probe, cohort, distance_cap=0.4)
    assert capped.score == pytest.approx(0.1125) and not capped.known  # score within tau


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
