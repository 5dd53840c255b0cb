"""Threshold selection, intervals and the gallery-size model on small synthetic distances."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from app.lab.calibration import gallery, normalise
from app.lab.calibration.data import SearchMatrix, split_identities
from app.lab.calibration.threshold import (
    bootstrap_rate,
    bootstrap_rates,
    pair_counts,
    tau_for_far,
)
from app.lab.evaluation.dataset import FaceSet


def test_tau_for_far_accepts_at_most_the_target_share() -> None:
    impostor = np.array([0.5, 0.1, 0.4, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 1.0])
    tau = tau_for_far(impostor, 0.2)  # two of ten may be accepted: 0.1 and 0.2
    assert 0.2 <= tau < 0.3
    assert np.count_nonzero(impostor <= tau) == 2
    assert np.count_nonzero(impostor <= tau_for_far(impostor, 0.05)) == 0
    assert np.count_nonzero(impostor <= tau_for_far(impostor, 0.25)) == 2  # 3/10 > 0.25


def _toy_matrix() -> tuple[np.ndarray, np.ndarray]:
    """Three people with 2, 2 and 3 images; distances hand-set."""
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    rng = np.random.default_rng(1)
    d = rng.uniform(0.5, 1.0, size=(7, 7))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    d[0, 1] = d[1, 0] = 0.1  # genuine, accepted at 0.3
    d[2, 3] = d[3, 2] = 0.6  # genuine, rejected
    d[4, 5] = d[5, 4] = 0.2
    d[4, 6] = d[6, 4] = 0.25
    d[5, 6] = d[6, 5] = 0.9
    d[0, 2] = d[2, 0] = 0.05  # one impostor pair accepted
    return d, labels


def test_pair_counts_match_counting_pairs_by_hand() -> None:
    d, labels = _toy_matrix()
    counts = pair_counts(d, labels, 0.3)
    i, j = np.triu_indices(7, k=1)
    same = labels[i] == labels[j]
    accepted = d[i, j] <= 0.3
    ones = np.ones(3)
    assert counts.far(ones) == pytest.approx(accepted[~same].mean())  # 1 of 16
    assert counts.tar(ones) == pytest.approx(accepted[same].mean())  # 3 of 5
    assert counts.far(ones) == pytest.approx(1 / 16) and counts.tar(ones) == pytest.approx(0.6)
    # drawing person 2 twice: its pairs with itself are genuine, never impostor pairs
    weights = np.array([1.0, 0.0, 2.0])
    # impostor pairs person 0 x person 2: 2 * 3 images, twice; none accepted
    assert counts.far(weights) == 0.0
    assert counts.tar(weights) == pytest.approx((1 + 2 * 2) / (1 + 2 * 3))


def test_bootstrap_interval_contains_the_rate() -> None:
    d, labels = _toy_matrix()
    far, tar = bootstrap_rates(pair_counts(d, labels, 0.3), replicates=200)
    assert far.low <= far.value <= far.high and tar.low <= tar.value <= tar.high
    assert far.high > far.low  # resampling three people moves the rate


def test_bootstrap_rate_resamples_groups() -> None:
    hits = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    groups = np.array([7, 7, 9, 9, 11, 11])  # any labels; whole people fail together
    interval = bootstrap_rate(hits, groups, replicates=500)
    assert interval.value == pytest.approx(1 / 3)
    # resampled rates are 0, 1/3, 2/3 or 1; a third of resamples lack the hit person
    assert interval.low == 0.0 and interval.high >= 2 / 3


def _uniform_search(probes: int, entries: int, seed: int = 0) -> SearchMatrix:
    """Impostor distances i.i.d. uniform on [0, 1]: FPIR(t, N) = 1 - (1 - t)^N exactly;
    every probe's identity is enrolled with a genuine distance of 0.05."""
    rng = np.random.default_rng(seed)
    distances = rng.uniform(size=(probes, entries))
    probe_identity = rng.integers(0, entries, size=probes)
    distances[np.arange(probes), probe_identity] = 0.05
    return SearchMatrix(
        distances=distances,
        probe_identity=probe_identity.astype(np.int64),
        gallery_identity=np.arange(entries, dtype=np.int64),
        probe_failed=np.zeros(probes, dtype=bool),
    )


def test_measured_fpir_is_the_hypergeometric_average_over_galleries() -> None:
    search = _uniform_search(probes=20, entries=12, seed=3)
    tau, size = 0.2, 4
    exact = gallery.measured_fpir(search, [tau], size)[0]
    # brute force: the average over random galleries of 4 of each probe's 11 impostors
    rng = np.random.default_rng(0)
    mask = search.impostor_mask()
    hits = []
    for row, keep in zip(search.distances, mask, strict=True):
        impostors = row[keep]
        for _ in range(3000):
            hits.append(rng.choice(impostors, size, replace=False).min() <= tau)
    assert exact == pytest.approx(np.mean(hits), abs=0.01)


def test_independent_model_holds_the_target_fpir_on_independent_distances() -> None:
    search = _uniform_search(probes=400, entries=500)
    model = gallery.fit_gallery_model(search, "independent")
    for size in (1, 10, 100):
        tau = model.tau_for_fpir(0.05, size)
        truth = -math.expm1(math.log1p(-0.05) / size)  # F(tau) = tau for uniform distances
        assert tau == pytest.approx(truth, rel=0.25)  # ~100 distances below it at N=100
        assert gallery.measured_fpir(search, [tau], size)[0] == pytest.approx(0.05, rel=0.15)
    # a larger gallery needs a stricter threshold for the same FPIR
    assert model.tau_for_fpir(0.01, 1000) < model.tau_for_fpir(0.01, 100)
    # the power-law tail is F ~ t: exponent about 1 for uniform distances
    assert model.tail_k == pytest.approx(1.0, abs=0.15)


def test_weibull_fit_recovers_fpir_of_independent_distances() -> None:
    search = _uniform_search(probes=400, entries=500, seed=2)
    model = gallery.fit_gallery_model(search, "weibull")
    log_a, b, k = model.weibull
    # 1 - (1 - t)^N ~ 1 - exp(-N t) for small t: a = 1, b = 1, k = 1
    assert b == pytest.approx(1.0, abs=0.1) and k == pytest.approx(1.0, abs=0.15)
    assert log_a == pytest.approx(0.0, abs=0.5)
    for size in (4, 64):
        tau = model.tau_for_fpir(0.02, size)
        assert gallery.measured_fpir(search, [tau], size)[0] == pytest.approx(0.02, rel=0.3)


def test_expected_fnir_counts_misses_and_impostors_nearer_than_the_mate() -> None:
    search = _uniform_search(probes=300, entries=400, seed=4)
    model = gallery.fit_gallery_model(search, "independent")
    # every mate is at 0.05: below tau none is missed except by an impostor nearer than 0.05
    for size in (2, 50):
        expected = model.expected_fnir(0.5, size)
        assert expected == pytest.approx(gallery.measured_fnir(search, 0.5, size), abs=0.03)
        assert expected == pytest.approx(1 - 0.95 ** (size - 1), abs=0.03)
    assert model.expected_fnir(0.01, 10) == 1.0  # tau below every mate
    stored = gallery.GalleryModel.from_dict(model.as_dict())
    assert stored.tau_for_fpir(0.01, 77) == model.tau_for_fpir(0.01, 77)


def test_split_identities_is_seeded_and_disjoint(tmp_path: Path) -> None:
    identities = {f"p{i:02d}": [tmp_path / f"p{i:02d}.jpg"] for i in range(10)}
    face_set = FaceSet(root=tmp_path, name="toy", identities=identities)
    part, held = split_identities(face_set, 0.3)
    assert len(held.identities) == 3 and len(part.identities) == 7
    assert not set(part.identities) & set(held.identities)
    assert split_identities(face_set, 0.3)[1].identities == held.identities
    assert split_identities(face_set, 0.3, seed=1)[1].identities != held.identities
    assert split_identities(face_set, 0.0)[1].identities == {}


def test_margin_and_cohort_scores() -> None:
    two = np.array([[0.2, 0.3], [0.2, 0.9]])
    cohort = np.array([[0.4, 0.6, 2.0], [0.8, 1.2, 2.0]])
    assert normalise._score("raw", 0.0, two, cohort).tolist() == [0.2, 0.2]
    # the probe as near to a second person is less sure (a larger score)
    margin = normalise._score("margin", 1.0, two, cohort)
    assert margin == pytest.approx([0.1, -0.5])
    # the probe near everyone in the cohort has its distance scaled down less
    assert normalise._score("cohort", 2, two, cohort) == pytest.approx([0.4, 0.2])
